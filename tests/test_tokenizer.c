/* Tokenizer against the Python reference's cases (tests/data/tokenizer_cases.json), the
 * HuggingFace file layout against the OpenAI one, truncation and bad files. */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "tokenizer.h"
#include "umgclip.h"

#define CONTEXT_LENGTH 77
#define BPE_GZ_NAME "bpe_simple_vocab_16e6.txt.gz"
/* As in OpenAI's simple_tokenizer.py: the merges CLIP uses. */
#define N_MERGES (49152 - 256 - 2)

static const gchar *bpe_gz_path;
static const gchar *cases_path;
static UmgTokenizer *reference_tok; /* loaded from the .gz */

static gchar *
make_temp_dir (void)
{
  g_autoptr (GError) error = NULL;
  gchar *dir = g_dir_make_tmp ("umgclip-tokenizer-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
remove_temp_dir (const gchar *dir)
{
  g_autoptr (GDir) listing = g_dir_open (dir, 0, NULL);
  const gchar *name;

  while (listing && (name = g_dir_read_name (listing)) != NULL)
    {
      g_autofree gchar *path = g_build_filename (dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}

static void
write_file (const gchar *path, const gchar *contents, gssize len)
{
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, contents, len, &error);
  g_assert_no_error (error);
}

static gchar *
ids_to_string (const gint32 *ids, gint n)
{
  GString *text = g_string_new (NULL);

  for (gint i = 0; i < n; i++)
    g_string_append_printf (text, "%s%d", i ? " " : "", ids[i]);
  return g_string_free (text, FALSE);
}

/* Every case of the reference file, through tok; returns how many were checked. */
static guint
check_reference_cases (UmgTokenizer *tok)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  JsonArray *cases;

  json_parser_load_from_file (parser, cases_path, &error);
  g_assert_no_error (error);
  cases = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (cases), >=, 20);

  for (guint c = 0; c < json_array_get_length (cases); c++)
    {
      JsonObject *test_case = json_array_get_object_element (cases, c);
      const gchar *text = json_object_get_string_member (test_case, "text");
      JsonArray *expected = json_object_get_array_member (test_case, "tokens");
      gint32 expected_ids[CONTEXT_LENGTH], ids[CONTEXT_LENGTH];
      gint expected_count = 0;
      gint count;

      g_assert_cmpuint (json_array_get_length (expected), ==, CONTEXT_LENGTH);
      for (guint i = 0; i < CONTEXT_LENGTH; i++)
        {
          expected_ids[i] = json_array_get_int_element (expected, i);
          if (expected_ids[i] != 0)
            expected_count = i + 1;
        }

      count = umg_tokenizer_encode (tok, text, ids, CONTEXT_LENGTH);
      if (memcmp (ids, expected_ids, sizeof (ids)) != 0)
        {
          g_autofree gchar *got = ids_to_string (ids, CONTEXT_LENGTH);
          g_autofree gchar *want = ids_to_string (expected_ids, CONTEXT_LENGTH);

          g_error ("case %u \"%s\":\n got  %s\n want %s", c, text, got, want);
        }
      g_assert_cmpint (count, ==, expected_count);
    }
  return json_array_get_length (cases);
}

static void
test_known_answer (void)
{
  const gint32 expected[] = { 49406, 320, 1125, 539, 320, 2368, 49407 };
  gint32 ids[CONTEXT_LENGTH];
  gint count;

  g_assert_cmpuint (umg_tokenizer_vocab_size (reference_tok), ==, 49408);
  g_assert_cmpint (umg_tokenizer_start_id (reference_tok), ==, 49406);
  g_assert_cmpint (umg_tokenizer_end_id (reference_tok), ==, 49407);

  memset (ids, 0x55, sizeof (ids));
  count = umg_tokenizer_encode (reference_tok, "a photo of a cat", ids, CONTEXT_LENGTH);
  g_assert_cmpint (count, ==, G_N_ELEMENTS (expected));
  g_assert_cmpmem (ids, sizeof (expected), expected, sizeof (expected));
  for (gint i = count; i < CONTEXT_LENGTH; i++)
    g_assert_cmpint (ids[i], ==, 0);
}

static void
test_reference_cases (void)
{
  check_reference_cases (reference_tok);
}

static void
test_truncation (void)
{
  g_autoptr (GString) long_text = g_string_new (NULL);
  gint32 ids[CONTEXT_LENGTH], longer[CONTEXT_LENGTH + 40];
  const gint32 end = umg_tokenizer_end_id (reference_tok);
  gint count;

  /* Too long: the first 76 ids of the untruncated encoding, then the end id. */
  for (gint i = 0; i < 30; i++)
    g_string_append_printf (long_text, "a photo of cat %d ", i);
  count = umg_tokenizer_encode (reference_tok, long_text->str, longer, G_N_ELEMENTS (longer));
  g_assert_cmpint (count, ==, G_N_ELEMENTS (longer));
  count = umg_tokenizer_encode (reference_tok, long_text->str, ids, CONTEXT_LENGTH);
  g_assert_cmpint (count, ==, CONTEXT_LENGTH);
  g_assert_cmpmem (ids, (CONTEXT_LENGTH - 1) * sizeof (gint32), longer,
                   (CONTEXT_LENGTH - 1) * sizeof (gint32));
  g_assert_cmpint (ids[CONTEXT_LENGTH - 1], ==, end);
  g_assert_cmpint (longer[CONTEXT_LENGTH - 1], !=, end);

  /* Short contexts around the 7 ids of the known answer. */
  count = umg_tokenizer_encode (reference_tok, "a photo of a cat", ids, 5);
  g_assert_cmpint (count, ==, 5);
  g_assert_cmpmem (ids, 5 * sizeof (gint32), ((const gint32[]){ 49406, 320, 1125, 539, 49407 }),
                   5 * sizeof (gint32));
  count = umg_tokenizer_encode (reference_tok, "a photo of a cat", ids, 7);
  g_assert_cmpint (count, ==, 7);
  g_assert_cmpint (ids[5], ==, 2368);
  g_assert_cmpint (ids[6], ==, end);
  count = umg_tokenizer_encode (reference_tok, "a photo of a cat", ids, 8);
  g_assert_cmpint (count, ==, 7);
  g_assert_cmpint (ids[7], ==, 0);
  count = umg_tokenizer_encode (reference_tok, "a photo of a cat", ids, 2);
  g_assert_cmpint (count, ==, 2);
  g_assert_cmpint (ids[0], ==, 49406);
  g_assert_cmpint (ids[1], ==, end);
  g_assert_cmpint (umg_tokenizer_encode (reference_tok, "cat", ids, 1), ==, -1);
}

static void
test_invalid_utf8 (void)
{
  gint32 ids[CONTEXT_LENGTH], replaced[CONTEXT_LENGTH];
  gint count;

  /* A stray byte reads as U+FFFD, so both spellings give the same ids. */
  count = umg_tokenizer_encode (reference_tok, "a photo of a cat\xff!", ids, CONTEXT_LENGTH);
  g_assert_cmpint (umg_tokenizer_encode (reference_tok, "a photo of a cat\xef\xbf\xbd!", replaced,
                                         CONTEXT_LENGTH),
                   ==, count);
  g_assert_cmpmem (ids, sizeof (ids), replaced, sizeof (replaced));
  g_assert_cmpint (count, >, 7);
  g_assert_cmpint (ids[5], ==, 2368);

  count = umg_tokenizer_encode (reference_tok, "\xc3\x28\xe2\x82\xf0\x90\x28", ids, CONTEXT_LENGTH);
  g_assert_cmpint (count, >, 2);
  g_assert_cmpint (ids[count - 1], ==, 49407);
}

/* Several threads share one tokenizer and its word cache. */
static gpointer
encode_many (gpointer data)
{
  gint32 *results = data;

  for (gint round = 0; round < 200; round++)
    {
      g_autofree gchar *text
          = g_strdup_printf ("a photo of %d cats and a dog number %d", round % 7, round);
      gint32 ids[CONTEXT_LENGTH];

      umg_tokenizer_encode (reference_tok, text, ids, CONTEXT_LENGTH);
      memcpy (results + round * CONTEXT_LENGTH, ids, sizeof (ids));
    }
  return NULL;
}

static void
test_threads (void)
{
  enum
  {
    N_THREADS = 4,
    N_ROUNDS = 200
  };
  g_autofree gint32 *results = g_new0 (gint32, N_THREADS * N_ROUNDS * CONTEXT_LENGTH);
  GThread *threads[N_THREADS];

  for (gint t = 0; t < N_THREADS; t++)
    threads[t] = g_thread_new ("encode", encode_many, results + t * N_ROUNDS * CONTEXT_LENGTH);
  for (gint t = 0; t < N_THREADS; t++)
    g_thread_join (threads[t]);
  for (gint t = 1; t < N_THREADS; t++)
    g_assert_cmpmem (results, N_ROUNDS * CONTEXT_LENGTH * sizeof (gint32),
                     results + t * N_ROUNDS * CONTEXT_LENGTH,
                     N_ROUNDS * CONTEXT_LENGTH * sizeof (gint32));
  g_assert_cmpint (results[1], ==, 320);
}

static gchar *
read_bpe_text (void)
{
  g_autoptr (GZlibDecompressor) decompressor
      = g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP);
  g_autoptr (GFile) file = g_file_new_for_path (bpe_gz_path);
  g_autoptr (GError) error = NULL;
  g_autoptr (GInputStream) compressed = G_INPUT_STREAM (g_file_read (file, NULL, &error));
  g_autoptr (GInputStream) plain = NULL;
  g_autoptr (GOutputStream) sink = g_memory_output_stream_new_resizable ();

  g_assert_no_error (error);
  plain = g_converter_input_stream_new (compressed, G_CONVERTER (decompressor));
  g_output_stream_splice (sink, plain, G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_write_all (sink, "", 1, NULL, NULL, &error);
  g_assert_no_error (error);
  g_output_stream_close (sink, NULL, &error);
  g_assert_no_error (error);
  return g_memory_output_stream_steal_data (G_MEMORY_OUTPUT_STREAM (sink));
}

/* The printable stand-in CLIP uses for each byte, in vocabulary order. */
static void
byte_symbols (gchar symbols[256][8])
{
  guint n = 0, extra = 0;

  for (guint pass = 0; pass < 2; pass++)
    {
      for (guint b = 0; b < 256; b++)
        {
          gboolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;

          if (printable != (pass == 0))
            continue;
          memset (symbols[n], 0, 8);
          g_unichar_to_utf8 (printable ? b : 256 + extra++, symbols[n]);
          n++;
        }
    }
}

/* Writes HuggingFace's vocab.json + merges.txt for the same vocabulary into dir. The
 * JSON members go in reverse id order so that no reader can rely on the order. */
static void
write_huggingface_files (const gchar *dir)
{
  g_autofree gchar *text = read_bpe_text ();
  g_auto (GStrv) lines = g_strsplit (text, "\n", N_MERGES + 2);
  g_autoptr (GPtrArray) vocab = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) merges = g_string_new ("#version: 0.2\n");
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *json = NULL;
  g_autofree gchar *vocab_path = g_build_filename (dir, "vocab.json", NULL);
  g_autofree gchar *merges_path = g_build_filename (dir, "merges.txt", NULL);
  gchar symbols[256][8];

  byte_symbols (symbols);
  for (guint i = 0; i < 256; i++)
    g_ptr_array_add (vocab, g_strdup (symbols[i]));
  for (guint i = 0; i < 256; i++)
    g_ptr_array_add (vocab, g_strconcat (symbols[i], "</w>", NULL));
  for (guint i = 1; i <= N_MERGES; i++)
    {
      g_auto (GStrv) parts = g_strsplit (lines[i], " ", -1);

      g_assert_cmpuint (g_strv_length (parts), ==, 2);
      g_ptr_array_add (vocab, g_strconcat (parts[0], parts[1], NULL));
      g_string_append_printf (merges, "%s\n", lines[i]);
    }
  g_ptr_array_add (vocab, g_strdup ("<|startoftext|>"));
  g_ptr_array_add (vocab, g_strdup ("<|endoftext|>"));
  g_assert_cmpuint (vocab->len, ==, 49408);

  json_builder_begin_object (builder);
  for (gint id = vocab->len - 1; id >= 0; id--)
    {
      json_builder_set_member_name (builder, g_ptr_array_index (vocab, id));
      json_builder_add_int_value (builder, id);
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json = json_generator_to_data (generator, NULL);

  write_file (vocab_path, json, -1);
  write_file (merges_path, merges->str, merges->len);
}

static void
test_huggingface_files (void)
{
  g_autofree gchar *dir = make_temp_dir ();
  g_autofree gchar *vocab_path = g_build_filename (dir, "vocab.json", NULL);
  g_autofree gchar *merges_path = g_build_filename (dir, "merges.txt", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgTokenizer) from_files = NULL;
  g_autoptr (UmgTokenizer) from_dir = NULL;

  write_huggingface_files (dir);
  from_files = umg_tokenizer_new_from_files (vocab_path, merges_path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (umg_tokenizer_vocab_size (from_files), ==, 49408);
  g_assert_cmpint (umg_tokenizer_start_id (from_files), ==, 49406);
  g_assert_cmpint (umg_tokenizer_end_id (from_files), ==, 49407);
  g_assert_cmpuint (check_reference_cases (from_files), >=, 20);

  /* A directory with both layouts prefers vocab.json + merges.txt; the result is the
   * same either way, so the .gz here is made unreadable to tell which was used. */
  {
    g_autofree gchar *decoy = g_build_filename (dir, BPE_GZ_NAME, NULL);

    write_file (decoy, "not gzip", -1);
    from_dir = umg_tokenizer_new_from_dir (dir, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (check_reference_cases (from_dir), >=, 20);
    g_unlink (decoy);
  }
  remove_temp_dir (dir);
}

static void
test_dir_with_bpe_gz (void)
{
  g_autofree gchar *dir = make_temp_dir ();
  g_autofree gchar *copy = g_build_filename (dir, BPE_GZ_NAME, NULL);
  g_autofree gchar *contents = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgTokenizer) tok = NULL;
  gsize len;

  g_file_get_contents (bpe_gz_path, &contents, &len, &error);
  g_assert_no_error (error);
  write_file (copy, contents, len);
  tok = umg_tokenizer_new_from_dir (dir, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (check_reference_cases (tok), >=, 20);
  remove_temp_dir (dir);
}

/* The call must fail with a message naming `named` (and `also`, when given). */
static void
assert_error_names (UmgTokenizer *tok, GError *error, gint code, const gchar *named,
                    const gchar *also)
{
  g_assert_null (tok);
  g_assert_error (error, UMGCLIP_ERROR, code);
  if (strstr (error->message, named) == NULL || (also && strstr (error->message, also) == NULL))
    g_error ("error message \"%s\" does not name \"%s\"%s%s", error->message, named,
             also ? " and " : "", also ? also : "");
}

static void
test_errors (void)
{
  g_autofree gchar *dir = make_temp_dir ();
  g_autofree gchar *missing = g_build_filename (dir, "absent.txt.gz", NULL);
  g_autofree gchar *corrupt = g_build_filename (dir, "corrupt.txt.gz", NULL);
  g_autofree gchar *truncated = g_build_filename (dir, "truncated.txt.gz", NULL);
  g_autofree gchar *vocab = g_build_filename (dir, "vocab.json", NULL);
  g_autofree gchar *merges = g_build_filename (dir, "merges.txt", NULL);
  g_autofree gchar *gz_contents = NULL;
  GError *error = NULL;
  UmgTokenizer *tok;
  gsize gz_len;

  tok = umg_tokenizer_new_from_bpe_gz (missing, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FILE, "absent.txt.gz", NULL);
  g_clear_error (&error);

  write_file (corrupt, "\x1f\x8b\x08\x00garbage that is not deflate data at all", -1);
  tok = umg_tokenizer_new_from_bpe_gz (corrupt, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "corrupt.txt.gz", NULL);
  g_clear_error (&error);

  g_file_get_contents (bpe_gz_path, &gz_contents, &gz_len, &error);
  g_assert_no_error (error);
  write_file (truncated, gz_contents, gz_len / 50);
  tok = umg_tokenizer_new_from_bpe_gz (truncated, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "truncated.txt.gz", NULL);
  g_clear_error (&error);

  /* Nothing to load in a directory: the message says what was looked for. */
  tok = umg_tokenizer_new_from_dir (dir, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FILE, dir, BPE_GZ_NAME);
  g_assert_nonnull (strstr (error->message, "vocab.json"));
  g_clear_error (&error);

  write_file (vocab, "{\"a\": 0, \"b\": 1,\n \"ab\": }", -1);
  write_file (merges, "#version: 0.2\na b\n", -1);
  tok = umg_tokenizer_new_from_files (vocab, merges, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "vocab.json", NULL);
  g_clear_error (&error);

  write_file (vocab, "{\"a\": 0, \"b\": \"one\"}", -1);
  tok = umg_tokenizer_new_from_files (vocab, merges, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "vocab.json", "\"b\"");
  g_clear_error (&error);

  /* A vocabulary without the special tokens. */
  write_file (vocab, "{\"a\": 0, \"b\": 1, \"ab\": 2}", -1);
  tok = umg_tokenizer_new_from_files (vocab, merges, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "vocab.json", "<|startoftext|>");
  g_clear_error (&error);

  /* The merges need the real vocabulary to get as far as their third line. */
  write_huggingface_files (dir);
  write_file (merges, "#version: 0.2\ni n\nth\nt h\n", -1);
  tok = umg_tokenizer_new_from_files (vocab, merges, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "merges.txt", "line 3");
  g_clear_error (&error);

  write_file (merges, "#version: 0.2\ni n\nq \xe2\x82\xac\n", -1);
  tok = umg_tokenizer_new_from_files (vocab, merges, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "merges.txt", "line 3");
  g_clear_error (&error);

  tok = umg_tokenizer_new_from_files (vocab, missing, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FILE, "absent.txt.gz", NULL);
  g_clear_error (&error);

  remove_temp_dir (dir);
}

/* A 10^5-letter word gives the reference's tokens (tests/data/tokenizer_long_word.json, from
 * tokenizer_ref.py), in full and truncated to the context. */
static void
test_long_word (void)
{
  g_autofree gchar *data_dir = g_path_get_dirname (cases_path);
  g_autofree gchar *path = g_build_filename (data_dir, "tokenizer_long_word.json", NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) word = g_string_new (NULL);
  g_autofree gint32 *tokens = NULL;
  JsonObject *root;
  JsonArray *expected;
  const gchar *block;
  gint64 letters;
  guint n_expected;
  gint count;
  gint32 context[CONTEXT_LENGTH];

  json_parser_load_from_file (parser, path, &error);
  g_assert_no_error (error);
  root = json_node_get_object (json_parser_get_root (parser));
  block = json_object_get_string_member (root, "block");
  letters = json_object_get_int_member (root, "letters");
  expected = json_object_get_array_member (root, "tokens");
  n_expected = json_array_get_length (expected);
  g_assert_cmpint (letters, ==, 100000);
  while (word->len < (gsize) letters)
    g_string_append (word, block);
  g_string_truncate (word, letters);

  /* the whole word, with room for every token */
  tokens = g_new (gint32, n_expected + 2);
  count = umg_tokenizer_encode (reference_tok, word->str, tokens, n_expected + 2);
  g_assert_cmpint (count, ==, n_expected + 2);
  g_assert_cmpint (tokens[0], ==, umg_tokenizer_start_id (reference_tok));
  for (guint i = 0; i < n_expected; i++)
    if (tokens[1 + i] != json_array_get_int_element (expected, i))
      g_error ("token %u is %d, the reference says %" G_GINT64_FORMAT, i, tokens[1 + i],
               json_array_get_int_element (expected, i));
  g_assert_cmpint (tokens[n_expected + 1], ==, umg_tokenizer_end_id (reference_tok));

  /* CLIP's context: the first 75 tokens and the end id */
  count = umg_tokenizer_encode (reference_tok, word->str, context, CONTEXT_LENGTH);
  g_assert_cmpint (count, ==, CONTEXT_LENGTH);
  for (guint i = 0; i + 2 < CONTEXT_LENGTH; i++)
    g_assert_cmpint (context[1 + i], ==, json_array_get_int_element (expected, i));
  g_assert_cmpint (context[CONTEXT_LENGTH - 1], ==, umg_tokenizer_end_id (reference_tok));
}

/* Files that once cost memory or a GLib critical: a small gzip file that inflates without end
 * fails early naming the file, and an empty vocab.json is an error of its own. */
static void
test_hostile_files (void)
{
  g_autofree gchar *dir = make_temp_dir ();
  g_autofree gchar *bomb = g_build_filename (dir, "bomb.txt.gz", NULL);
  g_autofree gchar *vocab = g_build_filename (dir, "vocab.json", NULL);
  g_autofree gchar *merges = g_build_filename (dir, "merges.txt", NULL);
  g_autoptr (GZlibCompressor) compressor = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 9);
  g_autoptr (GOutputStream) sink = g_memory_output_stream_new_resizable ();
  g_autoptr (GOutputStream) gz = g_converter_output_stream_new (sink, G_CONVERTER (compressor));
  g_autofree gchar *line = g_strnfill (1 << 20, 'a');
  GError *error = NULL;
  UmgTokenizer *tok;
  gsize written;

  /* 64 MiB in one line after the header: more than the 2 MiB the merges may take */
  g_assert_true (g_output_stream_write_all (gz, "#version: 0.2\n", 14, &written, NULL, NULL));
  for (guint i = 0; i < 64; i++)
    g_assert_true (g_output_stream_write_all (gz, line, 1 << 20, &written, NULL, NULL));
  g_assert_true (g_output_stream_close (gz, NULL, NULL));
  g_assert_cmpuint (g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (sink)), <,
                    1 << 20);
  write_file (bomb, g_memory_output_stream_get_data (G_MEMORY_OUTPUT_STREAM (sink)),
              g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (sink)));
  tok = umg_tokenizer_new_from_bpe_gz (bomb, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "bomb.txt.gz", "2 MiB");
  g_clear_error (&error);

  write_file (vocab, "", 0);
  write_file (merges, "#version: 0.2\na b\n", -1);
  tok = umg_tokenizer_new_from_files (vocab, merges, &error);
  assert_error_names (tok, error, UMGCLIP_ERROR_FORMAT, "vocab.json", NULL);
  g_clear_error (&error);
  remove_temp_dir (dir);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  gint status;

  g_test_init (&argc, &argv, NULL);

  bpe_gz_path = argc > 1 ? argv[1] : g_getenv ("UMGCLIP_BPE");
  cases_path = argc > 2 ? argv[2] : g_getenv ("UMGCLIP_TOKENIZER_CASES");
  if (bpe_gz_path == NULL || !g_file_test (bpe_gz_path, G_FILE_TEST_EXISTS))
    {
      g_printerr ("SKIP: CLIP's " BPE_GZ_NAME " not found (%s); pass its path as the first "
                  "argument or in UMGCLIP_BPE\n",
                  bpe_gz_path ? bpe_gz_path : "not set");
      return 77;
    }
  if (cases_path == NULL)
    {
      g_printerr ("pass tests/data/tokenizer_cases.json as the second argument or in "
                  "UMGCLIP_TOKENIZER_CASES\n");
      return 1;
    }

  reference_tok = umg_tokenizer_new_from_bpe_gz (bpe_gz_path, &error);
  g_assert_no_error (error);

  g_test_add_func ("/tokenizer/known-answer", test_known_answer);
  g_test_add_func ("/tokenizer/reference-cases", test_reference_cases);
  g_test_add_func ("/tokenizer/truncation", test_truncation);
  g_test_add_func ("/tokenizer/invalid-utf8", test_invalid_utf8);
  g_test_add_func ("/tokenizer/threads", test_threads);
  g_test_add_func ("/tokenizer/huggingface-files", test_huggingface_files);
  g_test_add_func ("/tokenizer/dir-with-bpe-gz", test_dir_with_bpe_gz);
  g_test_add_func ("/tokenizer/errors", test_errors);
  g_test_add_func ("/tokenizer/long-word", test_long_word);
  g_test_add_func ("/tokenizer/hostile-files", test_hostile_files);
  status = g_test_run ();
  umg_tokenizer_free (reference_tok);
  return status;
}
