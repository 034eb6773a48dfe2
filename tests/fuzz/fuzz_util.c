/* Scratch files and input splitting for the fuzz harnesses (fuzz_util.h). */
#include "fuzz_util.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

static gchar *scratch_dir;
static GHashTable *paths; /* name -> full path, kept for the life of the process */

static void
remove_scratch (void)
{
  GDir *dir = g_dir_open (scratch_dir, 0, NULL);
  const gchar *name;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree gchar *path = g_build_filename (scratch_dir, name, NULL);
      g_unlink (path);
    }
  if (dir != NULL)
    g_dir_close (dir);
  g_rmdir (scratch_dir);
}

const gchar *
fuzz_path (const gchar *name)
{
  gchar *path;
  if (scratch_dir == NULL)
    {
      /* on tmpfs where there is one: a harness writes files on every input */
      const gchar *base
          = g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR) ? "/dev/shm" : g_get_tmp_dir ();
      scratch_dir = g_build_filename (base, "umgclip-fuzz-XXXXXX", NULL);
      if (g_mkdtemp (scratch_dir) == NULL)
        g_error ("cannot make a scratch directory %s", scratch_dir);
      paths = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
      atexit (remove_scratch);
    }
  path = g_hash_table_lookup (paths, name);
  if (path == NULL)
    {
      path = g_build_filename (scratch_dir, name, NULL);
      g_hash_table_insert (paths, g_strdup (name), path);
    }
  return path;
}

const gchar *
fuzz_write (const gchar *name, const void *data, gsize size)
{
  const gchar *path = fuzz_path (name);
  FILE *file = fopen (path, "wb");
  if (file == NULL || (size > 0 && fwrite (data, 1, size, file) != size) || fclose (file) != 0)
    g_error ("cannot write %s", path);
  return path;
}

void
fuzz_remove (const gchar *name)
{
  g_unlink (fuzz_path (name));
}

guint
fuzz_split (const uint8_t *data, gsize size, guint max_parts, const uint8_t **parts, gsize *lengths)
{
  const gsize split_len = strlen (FUZZ_SPLIT);
  guint n = 0;
  while (n + 1 < max_parts)
    {
      const uint8_t *at = memmem (data, size, FUZZ_SPLIT, split_len);
      if (at == NULL)
        break;
      parts[n] = data;
      lengths[n++] = at - data;
      size -= at - data + split_len;
      data = at + split_len;
    }
  parts[n] = data;
  lengths[n++] = size;
  return n;
}

gchar *
fuzz_string (const uint8_t *data, gsize size)
{
  return g_strndup ((const gchar *) data, size);
}

const gchar *
fuzz_models_dir (void)
{
  return FUZZ_MODELS_DIR;
}

UmgTokenizer *
fuzz_clip_tokenizer (void)
{
  static UmgTokenizer *tok;
  if (tok == NULL)
    {
      g_autofree gchar *path = g_build_filename (fuzz_models_dir (), "tiny-openclip-bf16",
                                                 "bpe_simple_vocab_16e6.txt.gz", NULL);
      g_autoptr (GError) error = NULL;
      tok = umg_tokenizer_new_from_bpe_gz (path, &error);
      if (tok == NULL)
        g_error ("%s", error->message);
    }
  return tok;
}
