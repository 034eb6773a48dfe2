/* CLIP's byte-level BPE tokenizer: loads the merge table from HuggingFace or OpenAI files
 * and turns text into ids the way OpenAI's simple_tokenizer.py does. */
#include "tokenizer.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "umgclip.h"

#define START_TOKEN "<|startoftext|>"
#define END_TOKEN "<|endoftext|>"
#define WORD_END "</w>"
/* OpenAI's file holds more merges than CLIP uses: the vocabulary stops at 49152 entries
 * less the 256 byte symbols and the 2 special tokens. */
#define BPE_GZ_MERGES (49152 - 256 - 2)
/* Labels are few; the bound only keeps a long-running pipeline fed with captions from
 * growing without end. */
#define WORD_CACHE_LIMIT 65536
/* Longer pieces are encoded each time they occur: a cache of long words would grow with the
 * text it is fed. */
#define WORD_CACHE_MAX_BYTES 256
/* OpenAI's file holds 525 kB in its first 48,895 lines */
#define BPE_GZ_MAX_BYTES (2u << 20)
#define HTML_NAME_MAX 32

typedef struct
{
  gint64 pair; /* left id << 32 | right id */
  gint32 rank; /* lower merges first */
  gint32 merged_id;
} MergeRule;

typedef struct
{
  guint n_ids;
  gint32 ids[];
} WordIds;

struct _UmgTokenizer
{
  guint vocab_size;
  gint32 start_id, end_id;
  gint32 byte_id[256];     /* symbol of a byte inside a word */
  gint32 byte_end_id[256]; /* symbol of a byte ending a word (with </w>) */
  MergeRule *rules;        /* n_rules */
  guint n_rules;
  GHashTable *rule_by_pair; /* &rules[i].pair -> &rules[i] */
  GMutex cache_lock;
  GHashTable *word_cache; /* piece in UTF-8 -> WordIds */
};

/* One "left right" line of a merges file, pointing into the file's text. */
typedef struct
{
  const gchar *left, *right;
  gsize left_len, right_len;
  guint line; /* 1-based, for messages */
} MergeLine;

/* ---- byte to unicode ------------------------------------------------------------------ */

/* BPE works on text, so CLIP gives every byte a printable character: printable Latin-1
 * bytes stand for themselves, the others take U+0100 onwards. vocab_order lists the bytes
 * in the order the first 256 vocabulary entries use. */
static gboolean
byte_is_printable (guint b)
{
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void
fill_byte_chars (gunichar byte_char[256], guint8 vocab_order[256])
{
  guint n = 0, extra = 0;

  for (guint b = 0; b < 256; b++)
    {
      if (byte_is_printable (b))
        {
          byte_char[b] = b;
          vocab_order[n++] = b;
        }
    }
  for (guint b = 0; b < 256; b++)
    {
      if (!byte_is_printable (b))
        {
          byte_char[b] = 256 + extra++;
          vocab_order[n++] = b;
        }
    }
}

/* ---- building the tokenizer from a vocabulary and merges ----------------------------- */

static gint64
pair_key (gint32 left, gint32 right)
{
  return ((gint64) left << 32) | (guint32) right;
}

static gboolean
lookup_id (GHashTable *encoder, const gchar *symbol, gint32 *id)
{
  gpointer value;

  if (!g_hash_table_lookup_extended (encoder, symbol, NULL, &value))
    return FALSE;
  *id = GPOINTER_TO_INT (value);
  return TRUE;
}

/* encoder: symbol -> id. The same checks serve both file layouts, so a broken
 * vocab.json and a broken .gz are reported alike. */
static UmgTokenizer *
tokenizer_build (GHashTable *encoder, guint vocab_size, const MergeLine *merges, guint n_merges,
                 const gchar *vocab_path, const gchar *merges_path, GError **error)
{
  g_autoptr (UmgTokenizer) tok = g_new0 (UmgTokenizer, 1);
  gunichar byte_char[256];
  guint8 vocab_order[256];

  g_mutex_init (&tok->cache_lock);
  tok->word_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  tok->rule_by_pair = g_hash_table_new (g_int64_hash, g_int64_equal);
  tok->vocab_size = vocab_size;

  if (!lookup_id (encoder, START_TOKEN, &tok->start_id)
      || !lookup_id (encoder, END_TOKEN, &tok->end_id))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: the vocabulary lacks the special tokens " START_TOKEN " and " END_TOKEN,
                   vocab_path);
      return NULL;
    }

  fill_byte_chars (byte_char, vocab_order);
  for (guint b = 0; b < 256; b++)
    {
      gchar symbol[16];
      gint len = g_unichar_to_utf8 (byte_char[b], symbol);

      strcpy (symbol + len, WORD_END);
      if (!lookup_id (encoder, symbol, &tok->byte_end_id[b]))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                       "%s: the vocabulary lacks the symbol \"%s\" of byte 0x%02x", vocab_path,
                       symbol, b);
          return NULL;
        }
      symbol[len] = '\0';
      if (!lookup_id (encoder, symbol, &tok->byte_id[b]))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                       "%s: the vocabulary lacks the symbol \"%s\" of byte 0x%02x", vocab_path,
                       symbol, b);
          return NULL;
        }
    }

  tok->rules = g_new0 (MergeRule, MAX (n_merges, 1));
  for (guint i = 0; i < n_merges; i++)
    {
      const MergeLine *merge = &merges[i];
      g_autofree gchar *left = g_strndup (merge->left, merge->left_len);
      g_autofree gchar *right = g_strndup (merge->right, merge->right_len);
      g_autofree gchar *merged = g_strconcat (left, right, NULL);
      gint32 left_id = 0, right_id = 0, merged_id = 0;
      const gchar *missing = NULL;
      MergeRule *rule;

      if (!lookup_id (encoder, left, &left_id))
        missing = left;
      else if (!lookup_id (encoder, right, &right_id))
        missing = right;
      else if (!lookup_id (encoder, merged, &merged_id))
        missing = merged;
      if (missing)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                       "%s: line %u: \"%s\" is not in the vocabulary of %s", merges_path,
                       merge->line, missing, vocab_path);
          return NULL;
        }

      /* A pair listed twice keeps its last rank, as a Python dict built from the list
       * would. */
      rule = g_hash_table_lookup (tok->rule_by_pair, &(gint64){ pair_key (left_id, right_id) });
      if (rule == NULL)
        {
          rule = &tok->rules[tok->n_rules++];
          rule->pair = pair_key (left_id, right_id);
          rule->merged_id = merged_id;
          g_hash_table_insert (tok->rule_by_pair, &rule->pair, rule);
        }
      rule->rank = i;
    }

  return g_steal_pointer (&tok);
}

void
umg_tokenizer_free (UmgTokenizer *tok)
{
  if (tok == NULL)
    return;
  g_clear_pointer (&tok->rule_by_pair, g_hash_table_unref);
  g_clear_pointer (&tok->word_cache, g_hash_table_unref);
  g_mutex_clear (&tok->cache_lock);
  g_free (tok->rules);
  g_free (tok);
}

/* ---- reading files -------------------------------------------------------------------- */

static gboolean
read_file (const gchar *path, gchar **contents, gsize *length, GError **error)
{
  g_autoptr (GError) local = NULL;

  if (!g_file_get_contents (path, contents, length, &local))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "cannot read tokenizer file %s: %s",
                   path, local->message);
      return FALSE;
    }
  return TRUE;
}

/* Inflates only the first max_lines lines: CLIP reads 48,894 merges of a file that holds more,
 * and a small file that inflates to gigabytes must fail early instead of filling memory. */
static gboolean
gunzip_lines (const gchar *path, const gchar *data, gsize size, guint max_lines, gchar **text,
              gsize *text_len, GError **error)
{
  g_autoptr (GZlibDecompressor) decompressor
      = g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP);
  g_autoptr (GInputStream) compressed = g_memory_input_stream_new_from_data (data, size, NULL);
  g_autoptr (GInputStream) plain
      = g_converter_input_stream_new (compressed, G_CONVERTER (decompressor));
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autoptr (GError) local = NULL;
  guint8 chunk[65536];
  guint lines = 0;
  gsize end = 0; /* bytes up to and including the last newline counted */

  while (lines < max_lines)
    {
      gssize got = g_input_stream_read (plain, chunk, sizeof chunk, NULL, &local);
      if (got < 0)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: bad gzip data: %s", path,
                       local->message);
          return FALSE;
        }
      if (got == 0)
        break;
      for (const guint8 *at = chunk;
           lines < max_lines && (at = memchr (at, '\n', chunk + got - at)) != NULL; at++)
        {
          lines++;
          end = out->len + (at - chunk) + 1;
        }
      g_byte_array_append (out, chunk, got);
      if (lines < max_lines && out->len > BPE_GZ_MAX_BYTES)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                       "%s: the first %u lines inflate to more than %u MiB; not a CLIP BPE file",
                       path, max_lines, BPE_GZ_MAX_BYTES >> 20);
          return FALSE;
        }
    }
  if (lines < max_lines)
    end = out->len;
  /* The terminating NUL lets the parser use string functions. */
  g_byte_array_set_size (out, end + 1);
  out->data[end] = '\0';
  *text_len = end;
  *text = (gchar *) g_byte_array_free (g_steal_pointer (&out), FALSE);
  return TRUE;
}

static guint
line_of (const gchar *text, const gchar *position)
{
  guint line = 1;

  for (const gchar *p = text; p < position; p++)
    line += *p == '\n';
  return line;
}

static gboolean
check_utf8 (const gchar *path, const gchar *text, gsize len, GError **error)
{
  const gchar *bad;

  if (g_utf8_validate (text, len, &bad))
    return TRUE;
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: line %u: invalid UTF-8", path,
               line_of (text, bad));
  return FALSE;
}

static gboolean
is_merge_separator (gchar c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* "left right" with optional surrounding blanks; anything else is an error. */
static gboolean
parse_merge_line (const gchar *path, const gchar *line, gsize len, guint line_number,
                  MergeLine *merge, GError **error)
{
  const gchar *end = line + len;
  const gchar *p = line;

  while (p < end && is_merge_separator (*p))
    p++;
  merge->left = p;
  while (p < end && !is_merge_separator (*p))
    p++;
  merge->left_len = p - merge->left;
  while (p < end && is_merge_separator (*p))
    p++;
  merge->right = p;
  while (p < end && !is_merge_separator (*p))
    p++;
  merge->right_len = p - merge->right;
  while (p < end && is_merge_separator (*p))
    p++;
  merge->line = line_number;

  if (merge->left_len == 0 || merge->right_len == 0 || p != end)
    {
      g_autofree gchar *shown = g_strndup (line, MIN (len, 60));

      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: line %u: expected two symbols separated by a space, got \"%s\"", path,
                   line_number, shown);
      return FALSE;
    }
  return TRUE;
}

/* Parses lines first_line.. of text (0-based) into merges, at most max_merges (0: all).
 * Blank lines at the end of the file are ignored. */
static GArray *
parse_merges (const gchar *path, const gchar *text, gsize len, guint first_line, guint max_merges,
              GError **error)
{
  g_autoptr (GArray) merges = g_array_new (FALSE, FALSE, sizeof (MergeLine));
  const gchar *end = text + len;
  const gchar *line = text;
  guint line_index = 0;

  while (end > text && g_ascii_isspace (end[-1]))
    end--;

  while (line < end && (max_merges == 0 || merges->len < max_merges))
    {
      const gchar *newline = memchr (line, '\n', end - line);
      const gchar *line_end = newline ? newline : end;

      if (line_index >= first_line)
        {
          MergeLine merge;

          if (!parse_merge_line (path, line, line_end - line, line_index + 1, &merge, error))
            return NULL;
          g_array_append_val (merges, merge);
        }
      line_index++;
      line = newline ? newline + 1 : end;
    }
  return g_steal_pointer (&merges);
}

UmgTokenizer *
umg_tokenizer_new_from_bpe_gz (const gchar *path, GError **error)
{
  g_autofree gchar *compressed = NULL;
  g_autofree gchar *text = NULL;
  g_autoptr (GArray) merges = NULL;
  g_autoptr (GHashTable) encoder = NULL;
  gunichar byte_char[256];
  guint8 vocab_order[256];
  gsize compressed_len, text_len;
  gint32 next_id = 0;

  g_return_val_if_fail (path != NULL, NULL);

  if (!read_file (path, &compressed, &compressed_len, error)
      || !gunzip_lines (path, compressed, compressed_len, 1 + BPE_GZ_MERGES, &text, &text_len,
                        error)
      || !check_utf8 (path, text, text_len, error))
    return NULL;

  /* Line 0 is a "#version" header. */
  merges = parse_merges (path, text, text_len, 1, BPE_GZ_MERGES, error);
  if (merges == NULL)
    return NULL;

  /* The file lists merges only; the vocabulary is implied: byte symbols, the same ending
   * a word, one per merge, then the special tokens. A symbol listed twice keeps its last
   * id, as in OpenAI's dict. */
  encoder = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  fill_byte_chars (byte_char, vocab_order);
  for (guint i = 0; i < 256; i++)
    {
      gchar symbol[8] = { 0 };

      g_unichar_to_utf8 (byte_char[vocab_order[i]], symbol);
      g_hash_table_insert (encoder, g_strdup (symbol), GINT_TO_POINTER (next_id++));
    }
  for (guint i = 0; i < 256; i++)
    {
      gchar symbol[8] = { 0 };

      g_unichar_to_utf8 (byte_char[vocab_order[i]], symbol);
      g_hash_table_insert (encoder, g_strconcat (symbol, WORD_END, NULL),
                           GINT_TO_POINTER (next_id++));
    }
  for (guint i = 0; i < merges->len; i++)
    {
      const MergeLine *merge = &g_array_index (merges, MergeLine, i);
      gchar *merged = g_malloc (merge->left_len + merge->right_len + 1);

      memcpy (merged, merge->left, merge->left_len);
      memcpy (merged + merge->left_len, merge->right, merge->right_len);
      merged[merge->left_len + merge->right_len] = '\0';
      g_hash_table_insert (encoder, merged, GINT_TO_POINTER (next_id++));
    }
  g_hash_table_insert (encoder, g_strdup (START_TOKEN), GINT_TO_POINTER (next_id++));
  g_hash_table_insert (encoder, g_strdup (END_TOKEN), GINT_TO_POINTER (next_id++));

  return tokenizer_build (encoder, next_id, (const MergeLine *) merges->data, merges->len, path,
                          path, error);
}

static GHashTable *
load_vocab_json (const gchar *path, guint *vocab_size, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GHashTable) encoder = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GError) local = NULL;
  g_autofree gchar *contents = NULL;
  JsonObject *root;
  JsonObjectIter iter;
  const gchar *symbol;
  JsonNode *node;
  gint64 max_id = -1;
  gsize len;

  if (!read_file (path, &contents, &len, error))
    return NULL;
  if (!json_parser_load_from_data (parser, contents, len, &local))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: bad JSON: %s", path,
                   local->message);
      return NULL;
    }
  if (json_parser_get_root (parser) == NULL
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: expected an object mapping tokens to ids", path);
      return NULL;
    }

  root = json_node_get_object (json_parser_get_root (parser));
  json_object_iter_init (&iter, root);
  while (json_object_iter_next (&iter, &symbol, &node))
    {
      gint64 id;

      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64
          || (id = json_node_get_int (node)) < 0 || id >= G_MAXINT32)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                       "%s: the id of token \"%s\" is not an integer in [0, 2^31 - 1)", path,
                       symbol);
          return NULL;
        }
      g_hash_table_insert (encoder, g_strdup (symbol), GINT_TO_POINTER ((gint32) id));
      max_id = MAX (max_id, id);
    }
  *vocab_size = max_id + 1;
  return g_steal_pointer (&encoder);
}

UmgTokenizer *
umg_tokenizer_new_from_files (const gchar *vocab_json, const gchar *merges_txt, GError **error)
{
  g_autoptr (GHashTable) encoder = NULL;
  g_autoptr (GArray) merges = NULL;
  g_autofree gchar *text = NULL;
  guint vocab_size, first_line = 0;
  gsize text_len;

  g_return_val_if_fail (vocab_json != NULL && merges_txt != NULL, NULL);

  encoder = load_vocab_json (vocab_json, &vocab_size, error);
  if (encoder == NULL)
    return NULL;
  if (!read_file (merges_txt, &text, &text_len, error)
      || !check_utf8 (merges_txt, text, text_len, error))
    return NULL;

  /* HuggingFace writes a "#version: 0.2" header; tolerate files without one. */
  if (g_str_has_prefix (text, "#version"))
    first_line = 1;
  merges = parse_merges (merges_txt, text, text_len, first_line, 0, error);
  if (merges == NULL)
    return NULL;

  return tokenizer_build (encoder, vocab_size, (const MergeLine *) merges->data, merges->len,
                          vocab_json, merges_txt, error);
}

UmgTokenizer *
umg_tokenizer_new_from_dir (const gchar *dir, GError **error)
{
  g_autofree gchar *vocab_json = NULL;
  g_autofree gchar *merges_txt = NULL;
  g_autofree gchar *bpe_gz = NULL;

  g_return_val_if_fail (dir != NULL, NULL);

  vocab_json = g_build_filename (dir, "vocab.json", NULL);
  merges_txt = g_build_filename (dir, "merges.txt", NULL);
  bpe_gz = g_build_filename (dir, "bpe_simple_vocab_16e6.txt.gz", NULL);

  if (g_file_test (vocab_json, G_FILE_TEST_EXISTS) && g_file_test (merges_txt, G_FILE_TEST_EXISTS))
    return umg_tokenizer_new_from_files (vocab_json, merges_txt, error);
  if (g_file_test (bpe_gz, G_FILE_TEST_EXISTS))
    return umg_tokenizer_new_from_bpe_gz (bpe_gz, error);

  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE,
               "%s: no tokenizer found (looked for vocab.json + merges.txt, then "
               "bpe_simple_vocab_16e6.txt.gz)",
               dir);
  return NULL;
}

guint
umg_tokenizer_vocab_size (UmgTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, 0);
  return tok->vocab_size;
}

gint32
umg_tokenizer_start_id (UmgTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, 0);
  return tok->start_id;
}

gint32
umg_tokenizer_end_id (UmgTokenizer *tok)
{
  g_return_val_if_fail (tok != NULL, 0);
  return tok->end_id;
}

/* ---- cleaning text -------------------------------------------------------------------- */

/* HTML 4's entities plus &apos; as HTML5 (Python's html.entities.html5) maps them, sorted
 * by name. Python knows all 2231 HTML5 names; captions rarely use others. legacy: also
 * recognised without the closing semicolon, and as the prefix of a longer name. */
typedef struct
{
  const gchar *name;
  gunichar value;
  gboolean legacy;
} HtmlEntity;

static const HtmlEntity html_entities[] = {
  { "AElig", 0x00C6, TRUE },    { "AMP", 0x0026, TRUE },      { "Aacute", 0x00C1, TRUE },
  { "Acirc", 0x00C2, TRUE },    { "Agrave", 0x00C0, TRUE },   { "Alpha", 0x0391, FALSE },
  { "Aring", 0x00C5, TRUE },    { "Atilde", 0x00C3, TRUE },   { "Auml", 0x00C4, TRUE },
  { "Beta", 0x0392, FALSE },    { "COPY", 0x00A9, TRUE },     { "Ccedil", 0x00C7, TRUE },
  { "Chi", 0x03A7, FALSE },     { "Dagger", 0x2021, FALSE },  { "Delta", 0x0394, FALSE },
  { "ETH", 0x00D0, TRUE },      { "Eacute", 0x00C9, TRUE },   { "Ecirc", 0x00CA, TRUE },
  { "Egrave", 0x00C8, TRUE },   { "Epsilon", 0x0395, FALSE }, { "Eta", 0x0397, FALSE },
  { "Euml", 0x00CB, TRUE },     { "GT", 0x003E, TRUE },       { "Gamma", 0x0393, FALSE },
  { "Iacute", 0x00CD, TRUE },   { "Icirc", 0x00CE, TRUE },    { "Igrave", 0x00CC, TRUE },
  { "Iota", 0x0399, FALSE },    { "Iuml", 0x00CF, TRUE },     { "Kappa", 0x039A, FALSE },
  { "LT", 0x003C, TRUE },       { "Lambda", 0x039B, FALSE },  { "Mu", 0x039C, FALSE },
  { "Ntilde", 0x00D1, TRUE },   { "Nu", 0x039D, FALSE },      { "OElig", 0x0152, FALSE },
  { "Oacute", 0x00D3, TRUE },   { "Ocirc", 0x00D4, TRUE },    { "Ograve", 0x00D2, TRUE },
  { "Omega", 0x03A9, FALSE },   { "Omicron", 0x039F, FALSE }, { "Oslash", 0x00D8, TRUE },
  { "Otilde", 0x00D5, TRUE },   { "Ouml", 0x00D6, TRUE },     { "Phi", 0x03A6, FALSE },
  { "Pi", 0x03A0, FALSE },      { "Prime", 0x2033, FALSE },   { "Psi", 0x03A8, FALSE },
  { "QUOT", 0x0022, TRUE },     { "REG", 0x00AE, TRUE },      { "Rho", 0x03A1, FALSE },
  { "Scaron", 0x0160, FALSE },  { "Sigma", 0x03A3, FALSE },   { "THORN", 0x00DE, TRUE },
  { "Tau", 0x03A4, FALSE },     { "Theta", 0x0398, FALSE },   { "Uacute", 0x00DA, TRUE },
  { "Ucirc", 0x00DB, TRUE },    { "Ugrave", 0x00D9, TRUE },   { "Upsilon", 0x03A5, FALSE },
  { "Uuml", 0x00DC, TRUE },     { "Xi", 0x039E, FALSE },      { "Yacute", 0x00DD, TRUE },
  { "Yuml", 0x0178, FALSE },    { "Zeta", 0x0396, FALSE },    { "aacute", 0x00E1, TRUE },
  { "acirc", 0x00E2, TRUE },    { "acute", 0x00B4, TRUE },    { "aelig", 0x00E6, TRUE },
  { "agrave", 0x00E0, TRUE },   { "alefsym", 0x2135, FALSE }, { "alpha", 0x03B1, FALSE },
  { "amp", 0x0026, TRUE },      { "and", 0x2227, FALSE },     { "ang", 0x2220, FALSE },
  { "apos", 0x0027, FALSE },    { "aring", 0x00E5, TRUE },    { "asymp", 0x2248, FALSE },
  { "atilde", 0x00E3, TRUE },   { "auml", 0x00E4, TRUE },     { "bdquo", 0x201E, FALSE },
  { "beta", 0x03B2, FALSE },    { "brvbar", 0x00A6, TRUE },   { "bull", 0x2022, FALSE },
  { "cap", 0x2229, FALSE },     { "ccedil", 0x00E7, TRUE },   { "cedil", 0x00B8, TRUE },
  { "cent", 0x00A2, TRUE },     { "chi", 0x03C7, FALSE },     { "circ", 0x02C6, FALSE },
  { "clubs", 0x2663, FALSE },   { "cong", 0x2245, FALSE },    { "copy", 0x00A9, TRUE },
  { "crarr", 0x21B5, FALSE },   { "cup", 0x222A, FALSE },     { "curren", 0x00A4, TRUE },
  { "dArr", 0x21D3, FALSE },    { "dagger", 0x2020, FALSE },  { "darr", 0x2193, FALSE },
  { "deg", 0x00B0, TRUE },      { "delta", 0x03B4, FALSE },   { "diams", 0x2666, FALSE },
  { "divide", 0x00F7, TRUE },   { "eacute", 0x00E9, TRUE },   { "ecirc", 0x00EA, TRUE },
  { "egrave", 0x00E8, TRUE },   { "empty", 0x2205, FALSE },   { "emsp", 0x2003, FALSE },
  { "ensp", 0x2002, FALSE },    { "epsilon", 0x03B5, FALSE }, { "equiv", 0x2261, FALSE },
  { "eta", 0x03B7, FALSE },     { "eth", 0x00F0, TRUE },      { "euml", 0x00EB, TRUE },
  { "euro", 0x20AC, FALSE },    { "exist", 0x2203, FALSE },   { "fnof", 0x0192, FALSE },
  { "forall", 0x2200, FALSE },  { "frac12", 0x00BD, TRUE },   { "frac14", 0x00BC, TRUE },
  { "frac34", 0x00BE, TRUE },   { "frasl", 0x2044, FALSE },   { "gamma", 0x03B3, FALSE },
  { "ge", 0x2265, FALSE },      { "gt", 0x003E, TRUE },       { "hArr", 0x21D4, FALSE },
  { "harr", 0x2194, FALSE },    { "hearts", 0x2665, FALSE },  { "hellip", 0x2026, FALSE },
  { "iacute", 0x00ED, TRUE },   { "icirc", 0x00EE, TRUE },    { "iexcl", 0x00A1, TRUE },
  { "igrave", 0x00EC, TRUE },   { "image", 0x2111, FALSE },   { "infin", 0x221E, FALSE },
  { "int", 0x222B, FALSE },     { "iota", 0x03B9, FALSE },    { "iquest", 0x00BF, TRUE },
  { "isin", 0x2208, FALSE },    { "iuml", 0x00EF, TRUE },     { "kappa", 0x03BA, FALSE },
  { "lArr", 0x21D0, FALSE },    { "lambda", 0x03BB, FALSE },  { "lang", 0x27E8, FALSE },
  { "laquo", 0x00AB, TRUE },    { "larr", 0x2190, FALSE },    { "lceil", 0x2308, FALSE },
  { "ldquo", 0x201C, FALSE },   { "le", 0x2264, FALSE },      { "lfloor", 0x230A, FALSE },
  { "lowast", 0x2217, FALSE },  { "loz", 0x25CA, FALSE },     { "lrm", 0x200E, FALSE },
  { "lsaquo", 0x2039, FALSE },  { "lsquo", 0x2018, FALSE },   { "lt", 0x003C, TRUE },
  { "macr", 0x00AF, TRUE },     { "mdash", 0x2014, FALSE },   { "micro", 0x00B5, TRUE },
  { "middot", 0x00B7, TRUE },   { "minus", 0x2212, FALSE },   { "mu", 0x03BC, FALSE },
  { "nabla", 0x2207, FALSE },   { "nbsp", 0x00A0, TRUE },     { "ndash", 0x2013, FALSE },
  { "ne", 0x2260, FALSE },      { "ni", 0x220B, FALSE },      { "not", 0x00AC, TRUE },
  { "notin", 0x2209, FALSE },   { "nsub", 0x2284, FALSE },    { "ntilde", 0x00F1, TRUE },
  { "nu", 0x03BD, FALSE },      { "oacute", 0x00F3, TRUE },   { "ocirc", 0x00F4, TRUE },
  { "oelig", 0x0153, FALSE },   { "ograve", 0x00F2, TRUE },   { "oline", 0x203E, FALSE },
  { "omega", 0x03C9, FALSE },   { "omicron", 0x03BF, FALSE }, { "oplus", 0x2295, FALSE },
  { "or", 0x2228, FALSE },      { "ordf", 0x00AA, TRUE },     { "ordm", 0x00BA, TRUE },
  { "oslash", 0x00F8, TRUE },   { "otilde", 0x00F5, TRUE },   { "otimes", 0x2297, FALSE },
  { "ouml", 0x00F6, TRUE },     { "para", 0x00B6, TRUE },     { "part", 0x2202, FALSE },
  { "permil", 0x2030, FALSE },  { "perp", 0x22A5, FALSE },    { "phi", 0x03C6, FALSE },
  { "pi", 0x03C0, FALSE },      { "piv", 0x03D6, FALSE },     { "plusmn", 0x00B1, TRUE },
  { "pound", 0x00A3, TRUE },    { "prime", 0x2032, FALSE },   { "prod", 0x220F, FALSE },
  { "prop", 0x221D, FALSE },    { "psi", 0x03C8, FALSE },     { "quot", 0x0022, TRUE },
  { "rArr", 0x21D2, FALSE },    { "radic", 0x221A, FALSE },   { "rang", 0x27E9, FALSE },
  { "raquo", 0x00BB, TRUE },    { "rarr", 0x2192, FALSE },    { "rceil", 0x2309, FALSE },
  { "rdquo", 0x201D, FALSE },   { "real", 0x211C, FALSE },    { "reg", 0x00AE, TRUE },
  { "rfloor", 0x230B, FALSE },  { "rho", 0x03C1, FALSE },     { "rlm", 0x200F, FALSE },
  { "rsaquo", 0x203A, FALSE },  { "rsquo", 0x2019, FALSE },   { "sbquo", 0x201A, FALSE },
  { "scaron", 0x0161, FALSE },  { "sdot", 0x22C5, FALSE },    { "sect", 0x00A7, TRUE },
  { "shy", 0x00AD, TRUE },      { "sigma", 0x03C3, FALSE },   { "sigmaf", 0x03C2, FALSE },
  { "sim", 0x223C, FALSE },     { "spades", 0x2660, FALSE },  { "sub", 0x2282, FALSE },
  { "sube", 0x2286, FALSE },    { "sum", 0x2211, FALSE },     { "sup", 0x2283, FALSE },
  { "sup1", 0x00B9, TRUE },     { "sup2", 0x00B2, TRUE },     { "sup3", 0x00B3, TRUE },
  { "supe", 0x2287, FALSE },    { "szlig", 0x00DF, TRUE },    { "tau", 0x03C4, FALSE },
  { "there4", 0x2234, FALSE },  { "theta", 0x03B8, FALSE },   { "thetasym", 0x03D1, FALSE },
  { "thinsp", 0x2009, FALSE },  { "thorn", 0x00FE, TRUE },    { "tilde", 0x02DC, FALSE },
  { "times", 0x00D7, TRUE },    { "trade", 0x2122, FALSE },   { "uArr", 0x21D1, FALSE },
  { "uacute", 0x00FA, TRUE },   { "uarr", 0x2191, FALSE },    { "ucirc", 0x00FB, TRUE },
  { "ugrave", 0x00F9, TRUE },   { "uml", 0x00A8, TRUE },      { "upsih", 0x03D2, FALSE },
  { "upsilon", 0x03C5, FALSE }, { "uuml", 0x00FC, TRUE },     { "weierp", 0x2118, FALSE },
  { "xi", 0x03BE, FALSE },      { "yacute", 0x00FD, TRUE },   { "yen", 0x00A5, TRUE },
  { "yuml", 0x00FF, TRUE },     { "zeta", 0x03B6, FALSE },    { "zwj", 0x200D, FALSE },
  { "zwnj", 0x200C, FALSE },
};

static int
compare_entity_name (const void *key, const void *entry)
{
  return strcmp (key, ((const HtmlEntity *) entry)->name);
}

static const HtmlEntity *
find_entity (const gchar *name, gsize len)
{
  gchar key[HTML_NAME_MAX * 6 + 1];

  if (len >= sizeof (key))
    return NULL;
  memcpy (key, name, len);
  key[len] = '\0';
  return bsearch (key, html_entities, G_N_ELEMENTS (html_entities), sizeof (HtmlEntity),
                  compare_entity_name);
}

/* Code points 0x80..0x9f in a numeric reference mean Windows-1252, per HTML5. */
static const gunichar windows_1252_high[32] = {
  0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
  0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
  0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* HTML5's rules for &#N;, as Python's html.unescape applies them. */
static void
append_numeric_reference (GString *out, guint32 value)
{
  if (value == 0)
    g_string_append_unichar (out, 0xFFFD);
  else if (value == 0x0D)
    g_string_append_c (out, '\r');
  else if (value >= 0x80 && value <= 0x9F)
    g_string_append_unichar (out, windows_1252_high[value - 0x80]);
  else if ((value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF)
    g_string_append_unichar (out, 0xFFFD);
  else if ((value >= 0x01 && value <= 0x08) || value == 0x0B || (value >= 0x0E && value <= 0x1F)
           || value == 0x7F || (value >= 0xFDD0 && value <= 0xFDEF) || (value & 0xFFFE) == 0xFFFE)
    return; /* non-characters and controls vanish */
  else
    g_string_append_unichar (out, value);
}

static gboolean
is_entity_name_char (gunichar c)
{
  return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#'
         && c != ';';
}

/* p follows an '&'. Appends the replacement and returns the end of the reference, or
 * NULL when none starts here (the '&' then stays as it is). */
static const gchar *
unescape_reference (const gchar *p, GString *out)
{
  if (p[0] == '#')
    {
      gboolean hex = (p[1] == 'x' || p[1] == 'X') && g_ascii_isxdigit (p[2]);
      const gchar *digit = p + (hex ? 2 : 1);
      guint32 value = 0;

      if (!hex && !g_ascii_isdigit (*digit))
        return NULL;
      for (; hex ? g_ascii_isxdigit (*digit) : g_ascii_isdigit (*digit); digit++)
        {
          guint d = hex ? g_ascii_xdigit_value (*digit) : g_ascii_digit_value (*digit);

          /* Saturate: anything past U+10FFFF is replaced alike. */
          value = value > 0x10FFFF ? value : value * (hex ? 16 : 10) + d;
        }
      append_numeric_reference (out, value);
      return *digit == ';' ? digit + 1 : digit;
    }

  /* Named: up to 32 characters, then an optional ';'. */
  const gchar *name_end = p;
  const gchar *prefix_ends[HTML_NAME_MAX + 1];
  guint n_chars = 0;

  while (n_chars < HTML_NAME_MAX && *name_end && is_entity_name_char (g_utf8_get_char (name_end)))
    {
      name_end = g_utf8_next_char (name_end);
      prefix_ends[++n_chars] = name_end;
    }
  if (n_chars == 0)
    return NULL;

  gboolean has_semicolon = *name_end == ';';
  const gchar *reference_end = has_semicolon ? name_end + 1 : name_end;
  const HtmlEntity *entity = find_entity (p, name_end - p);

  if (entity != NULL && (has_semicolon || entity->legacy))
    {
      g_string_append_unichar (out, entity->value);
      return reference_end;
    }
  /* The longest legacy name (at least 2 characters) that starts the reference wins, and
   * the rest stays literal: "&ampfoo" is "&foo". The semicolon-less full name was tried
   * above. */
  for (guint chars = has_semicolon ? n_chars : n_chars - 1; chars >= 2; chars--)
    {
      entity = find_entity (p, prefix_ends[chars] - p);
      if (entity != NULL && entity->legacy)
        {
          g_string_append_unichar (out, entity->value);
          g_string_append_len (out, prefix_ends[chars], reference_end - prefix_ends[chars]);
          return reference_end;
        }
    }
  g_string_append_c (out, '&');
  g_string_append_len (out, p, reference_end - p);
  return reference_end;
}

static gchar *
html_unescape (const gchar *text)
{
  GString *out = g_string_sized_new (strlen (text));

  for (const gchar *p = text; *p;)
    {
      const gchar *next;

      if (*p == '&' && (next = unescape_reference (p + 1, out)) != NULL)
        {
          p = next;
        }
      else
        {
          g_string_append_c (out, *p);
          p++;
        }
    }
  return g_string_free (out, FALSE);
}

/* What Python's str.isspace() (and so the \s of CLIP's patterns) calls whitespace. */
static gboolean
is_clip_space (gunichar c)
{
  if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85)
    return TRUE;
  switch (g_unichar_type (c))
    {
    case G_UNICODE_SPACE_SEPARATOR:
    case G_UNICODE_LINE_SEPARATOR:
    case G_UNICODE_PARAGRAPH_SEPARATOR:
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
is_letter (gunichar c)
{
  switch (g_unichar_type (c))
    {
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
is_number (gunichar c)
{
  switch (g_unichar_type (c))
    {
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
      return TRUE;
    default:
      return FALSE;
    }
}

/* Unicode's Case_Ignorable and Cased properties, close enough for the one rule that needs
 * them (Greek final sigma); GLib exposes neither. */
static gboolean
is_case_ignorable (gunichar c)
{
  switch (g_unichar_type (c))
    {
    case G_UNICODE_NON_SPACING_MARK:
    case G_UNICODE_ENCLOSING_MARK:
    case G_UNICODE_FORMAT:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_MODIFIER_SYMBOL:
      return TRUE;
    default:
      break;
    }
  switch (c)
    {
    case '\'':
    case '.':
    case ':':
    case 0x00B7:
    case 0x0387:
    case 0x055F:
    case 0x05F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
is_cased (gunichar c)
{
  switch (g_unichar_type (c))
    {
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
      return TRUE;
    default:
      return c == 0xAA || c == 0xBA || (c >= 0x2160 && c <= 0x217F) || (c >= 0x24B6 && c <= 0x24E9)
             || (c >= 0x1F130 && c <= 0x1F189);
    }
}

/* Σ is ς when it ends a word: a cased letter before it and none after, ignoring
 * case-ignorable characters in between (Unicode's Final_Sigma, as Python applies it). */
static gboolean
sigma_is_final (const gunichar *text, gsize n, gsize at)
{
  gssize before = (gssize) at - 1;
  gsize after = at + 1;

  while (before >= 0 && is_case_ignorable (text[before]))
    before--;
  if (before < 0 || !is_cased (text[before]))
    return FALSE;
  while (after < n && is_case_ignorable (text[after]))
    after++;
  return after == n || !is_cased (text[after]);
}

/* Python's str.lower(): full mappings where they differ from the simple ones. Not
 * g_utf8_strdown, whose result depends on the process's locale (Turkish dotless i). */
static gunichar *
lower_case (const gunichar *text, gsize n, gsize *n_out)
{
  gunichar *out = g_new (gunichar, 2 * n + 1);
  gsize len = 0;

  for (gsize i = 0; i < n; i++)
    {
      if (text[i] == 0x0130)
        {
          out[len++] = 'i';
          out[len++] = 0x0307;
        }
      else if (text[i] == 0x03A3)
        {
          out[len++] = sigma_is_final (text, n, i) ? 0x03C2 : 0x03C3;
        }
      else if ((text[i] >= 0x2160 && text[i] <= 0x216F) || (text[i] >= 0x24B6 && text[i] <= 0x24CF))
        {
          /* Roman numerals and circled letters have lower-case forms although they are not
           * letters; g_unichar_tolower only maps letters. */
          out[len++] = text[i] + (text[i] <= 0x216F ? 0x10 : 26);
        }
      else
        {
          out[len++] = g_unichar_tolower (text[i]);
        }
    }
  *n_out = len;
  return out;
}

/* OpenAI's clean steps: ftfy.fix_text (only curly quotes and NFC; ftfy itself is out of
 * scope), html.unescape twice, whitespace runs to one space, strip, lower-case. */
static gunichar *
clean_text (const gchar *text, gsize *n_out)
{
  g_autofree gchar *valid = g_utf8_make_valid (text, -1);
  g_autoptr (GString) straight = g_string_sized_new (strlen (valid));
  g_autofree gchar *composed = NULL;
  g_autofree gchar *once = NULL;
  g_autofree gchar *twice = NULL;
  g_autofree gunichar *chars = NULL;
  g_autofree gunichar *collapsed = NULL;
  glong n_chars;
  gsize n = 0;

  for (const gchar *p = valid; *p; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
        c = '\'';
      else if (c >= 0x201C && c <= 0x201F)
        c = '"';
      g_string_append_unichar (straight, c);
    }
  composed = g_utf8_normalize (straight->str, straight->len, G_NORMALIZE_DEFAULT_COMPOSE);
  once = html_unescape (composed);
  twice = html_unescape (once);

  chars = g_utf8_to_ucs4_fast (twice, -1, &n_chars);
  collapsed = g_new (gunichar, n_chars + 1);
  for (glong i = 0; i < n_chars; i++)
    {
      if (!is_clip_space (chars[i]))
        collapsed[n++] = chars[i];
      else if (n > 0 && collapsed[n - 1] != ' ')
        collapsed[n++] = ' ';
    }
  if (n > 0 && collapsed[n - 1] == ' ')
    n--;

  return lower_case (collapsed, n, n_out);
}

/* ---- splitting into pieces ------------------------------------------------------------ */

/* CLIP compiles its pattern with IGNORECASE; once the text is lower case, LONG S is the
 * only character that still folds onto one of the pattern's letters. */
static gboolean
matches_literal (const gunichar *text, gsize n, gsize at, const gchar *literal)
{
  for (; *literal; literal++, at++)
    {
      if (at >= n)
        return FALSE;
      if (text[at] != (guchar) *literal && !(text[at] == 0x017F && *literal == 's'))
        return FALSE;
    }
  return TRUE;
}

/* Length of the piece CLIP's pattern matches at `at`:
 * <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * (text[at] is not whitespace). special: the piece is exactly one of the special tokens. */
static gsize
match_piece (const gunichar *text, gsize n, gsize at, gboolean *special)
{
  static const gchar *const special_tokens[] = { START_TOKEN, END_TOKEN };
  static const gchar *const contractions[] = { "s", "t", "re", "ve", "m", "ll", "d" };
  gsize end = at + 1;

  *special = FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (special_tokens); i++)
    {
      gsize len = strlen (special_tokens[i]);

      if (matches_literal (text, n, at, special_tokens[i]))
        {
          /* Spelt with LONG S it is matched all the same, but then encoded as text. */
          *special = TRUE;
          for (gsize j = 0; j < len; j++)
            *special &= text[at + j] == (guchar) special_tokens[i][j];
          return len;
        }
    }
  if (text[at] == '\'')
    {
      for (guint i = 0; i < G_N_ELEMENTS (contractions); i++)
        {
          if (matches_literal (text, n, at + 1, contractions[i]))
            return 1 + strlen (contractions[i]);
        }
    }
  if (is_letter (text[at]))
    {
      while (end < n && is_letter (text[end]))
        end++;
    }
  else if (!is_number (text[at]))
    {
      while (end < n && !is_clip_space (text[end]) && !is_letter (text[end])
             && !is_number (text[end]))
        end++;
    }
  return end - at;
}

/* ---- byte-pair encoding --------------------------------------------------------------- */

/* A pair of neighbouring symbols that a rule merges. The stamps are the two symbols' merge
 * counts when the pair was seen: a pair whose symbols changed since is stale. */
typedef struct
{
  gint32 rank;
  gsize left, right;
  guint32 left_stamp, right_stamp;
  const MergeRule *rule;
} Candidate;

/* Binary min-heap of candidates by (rank, left): equal ranks come out left to right. */
static gboolean
candidate_before (const Candidate *a, const Candidate *b)
{
  return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static void
heap_push (GArray *heap, const Candidate *candidate)
{
  Candidate *items;
  gsize at = heap->len;

  g_array_append_val (heap, *candidate);
  items = (Candidate *) heap->data;
  while (at > 0 && candidate_before (&items[at], &items[(at - 1) / 2]))
    {
      Candidate swap = items[at];
      items[at] = items[(at - 1) / 2];
      items[(at - 1) / 2] = swap;
      at = (at - 1) / 2;
    }
}

static Candidate
heap_pop (GArray *heap)
{
  Candidate *items = (Candidate *) heap->data;
  Candidate top = items[0];
  gsize at = 0, n;

  items[0] = items[heap->len - 1];
  g_array_set_size (heap, heap->len - 1);
  n = heap->len;
  while (TRUE)
    {
      gsize child = 2 * at + 1, smallest = at;
      if (child < n && candidate_before (&items[child], &items[smallest]))
        smallest = child;
      if (child + 1 < n && candidate_before (&items[child + 1], &items[smallest]))
        smallest = child + 1;
      if (smallest == at)
        break;
      Candidate swap = items[at];
      items[at] = items[smallest];
      items[smallest] = swap;
      at = smallest;
    }
  return top;
}

/* The symbols of one word, as a linked list so that a merge costs O(1). */
typedef struct
{
  gint32 *symbols;
  gsize *next, *prev; /* G_MAXSIZE: none */
  guint32 *stamp;     /* merges so far at that symbol */
} Symbols;

static void
note_pair (UmgTokenizer *tok, const Symbols *word, gsize left, GArray *out)
{
  gsize right = word->next[left];
  gint64 key;
  const MergeRule *rule;
  Candidate candidate;

  if (right == G_MAXSIZE)
    return;
  key = pair_key (word->symbols[left], word->symbols[right]);
  rule = g_hash_table_lookup (tok->rule_by_pair, &key);
  if (rule == NULL)
    return;
  candidate = (Candidate){ rule->rank, left, right, word->stamp[left], word->stamp[right], rule };
  g_array_append_val (out, candidate);
}

/* OpenAI's bpe(): repeatedly take the adjacent pair with the lowest merge rank and merge
 * every occurrence of it, left to right; the word's last byte carries </w>. Works on ids
 * rather than strings: each vocabulary string has exactly one id. Rescanning the word for
 * each merge costs O(n^2) on a long word; here the pairs wait in a heap, and the pairs that
 * a round of one rank creates join the heap only once that round is over, as in OpenAI's
 * loop: O(n log n). */
static WordIds *
encode_word (UmgTokenizer *tok, const guint8 *bytes, gsize n_bytes)
{
  Symbols word;
  g_autoptr (GArray) heap = g_array_new (FALSE, FALSE, sizeof (Candidate));
  g_autoptr (GArray) pending = g_array_new (FALSE, FALSE, sizeof (Candidate));
  gint32 round_rank = -1;
  gsize n = 0;
  WordIds *out;

  word.symbols = g_new (gint32, n_bytes);
  word.next = g_new (gsize, n_bytes);
  word.prev = g_new (gsize, n_bytes);
  word.stamp = g_new0 (guint32, n_bytes);
  for (gsize i = 0; i < n_bytes; i++)
    {
      word.symbols[i] = i + 1 < n_bytes ? tok->byte_id[bytes[i]] : tok->byte_end_id[bytes[i]];
      word.next[i] = i + 1 < n_bytes ? i + 1 : G_MAXSIZE;
      word.prev[i] = i > 0 ? i - 1 : G_MAXSIZE;
    }
  for (gsize i = 0; i + 1 < n_bytes; i++)
    note_pair (tok, &word, i, pending);

  while (TRUE)
    {
      Candidate top;
      gsize left, right;

      if (pending->len > 0 && (heap->len == 0 || ((Candidate *) heap->data)[0].rank != round_rank))
        {
          for (guint i = 0; i < pending->len; i++)
            heap_push (heap, &g_array_index (pending, Candidate, i));
          g_array_set_size (pending, 0);
        }
      if (heap->len == 0)
        break;
      top = heap_pop (heap);
      round_rank = top.rank;
      left = top.left;
      right = top.right;
      /* merged symbols leave the list with their stamp raised, so a stale pair fails here */
      if (word.next[left] != right || word.stamp[left] != top.left_stamp
          || word.stamp[right] != top.right_stamp)
        continue;
      word.symbols[left] = top.rule->merged_id;
      word.stamp[left]++;
      word.stamp[right]++;
      word.next[left] = word.next[right];
      if (word.next[right] != G_MAXSIZE)
        word.prev[word.next[right]] = left;
      word.next[right] = G_MAXSIZE;
      if (word.prev[left] != G_MAXSIZE)
        note_pair (tok, &word, word.prev[left], pending);
      note_pair (tok, &word, left, pending);
    }

  for (gsize i = 0; n_bytes > 0 && i != G_MAXSIZE; i = word.next[i])
    n++;
  out = g_malloc (sizeof (WordIds) + n * sizeof (gint32));
  out->n_ids = n;
  n = 0;
  for (gsize i = 0; n_bytes > 0 && i != G_MAXSIZE; i = word.next[i])
    out->ids[n++] = word.symbols[i];
  g_free (word.symbols);
  g_free (word.next);
  g_free (word.prev);
  g_free (word.stamp);
  return out;
}

/* Appends the piece's ids to tokens[*count..limit). */
static void
append_piece (UmgTokenizer *tok, const gchar *piece, gsize len, gint32 *tokens, gint *count,
              gint limit)
{
  const WordIds *word;
  g_autofree WordIds *uncached = NULL;

  if (len > WORD_CACHE_MAX_BYTES)
    {
      uncached = encode_word (tok, (const guint8 *) piece, len);
      for (guint i = 0; i < uncached->n_ids && *count < limit; i++)
        tokens[(*count)++] = uncached->ids[i];
      return;
    }
  g_mutex_lock (&tok->cache_lock);
  word = g_hash_table_lookup (tok->word_cache, piece);
  if (word == NULL)
    {
      WordIds *fresh = encode_word (tok, (const guint8 *) piece, len);

      if (g_hash_table_size (tok->word_cache) >= WORD_CACHE_LIMIT)
        g_hash_table_remove_all (tok->word_cache);
      g_hash_table_insert (tok->word_cache, g_strndup (piece, len), fresh);
      word = fresh;
    }
  for (guint i = 0; i < word->n_ids && *count < limit; i++)
    tokens[(*count)++] = word->ids[i];
  g_mutex_unlock (&tok->cache_lock);
}

gint
umg_tokenizer_encode (UmgTokenizer *tok, const gchar *text, gint32 *tokens, gint context_length)
{
  g_autofree gunichar *chars = NULL;
  g_autoptr (GString) piece = g_string_new (NULL);
  gsize n_chars;
  /* The end id always gets the last slot that is reached. */
  gint text_limit = context_length - 1;
  gint count = 0;

  g_return_val_if_fail (tok != NULL && text != NULL && tokens != NULL, -1);
  if (context_length < 2)
    return -1;

  memset (tokens, 0, context_length * sizeof (gint32));
  tokens[count++] = tok->start_id;

  chars = clean_text (text, &n_chars);
  for (gsize at = 0; at < n_chars && count < text_limit;)
    {
      gboolean special;
      gsize len;

      if (is_clip_space (chars[at]))
        {
          at++;
          continue;
        }
      len = match_piece (chars, n_chars, at, &special);
      if (special)
        {
          tokens[count++] = chars[at + 2] == 'e' ? tok->end_id : tok->start_id;
        }
      else
        {
          g_string_truncate (piece, 0);
          for (gsize i = at; i < at + len; i++)
            g_string_append_unichar (piece, chars[i]);
          append_piece (tok, piece->str, piece->len, tokens, &count, text_limit);
        }
      at += len;
    }
  tokens[count++] = tok->end_id;
  return count;
}
