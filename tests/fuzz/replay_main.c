/* Runs a fuzz harness without libFuzzer, as `meson test` does in a gcc build: every file of the
 * corpus directories once, then a bounded number of deterministic mutations of each (byte
 * changes, truncations, numbers swapped for edge values), so that the regression run also
 * strays a little from the seeds. usage: HARNESS [--mutations N] FILE_OR_DIR... */
#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const gchar *const edge_values[]
    = { "0",  "-1", "4294967292", "1073741824", "9223372036854775807", "1e300", "0.001", "16777215",
        "[]", "{}", "\"\"",       "null" };

static guint64 state = 0x9E3779B97F4A7C15u;

static guint64
next_random (void)
{
  /* xorshift64: the same mutations on every run */
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state;
}

static guint64 executions;

static void
run (const guint8 *data, gsize size)
{
  /* a copy of exactly size bytes, as libFuzzer passes, so that ASan sees reads past the end */
  guint8 *copy = g_memdup2 (data, size);
  LLVMFuzzerTestOneInput (copy, size);
  g_free (copy);
  executions++;
}

static void
mutate_and_run (const guint8 *data, gsize size, guint mutations)
{
  for (guint m = 0; m < mutations; m++)
    {
      g_autoptr (GByteArray) bytes = g_byte_array_new ();
      g_byte_array_append (bytes, data, size);
      switch (next_random () % 4)
        {
        case 0: /* change a few bytes */
          for (guint k = 0; k < 1 + next_random () % 4 && bytes->len > 0; k++)
            bytes->data[next_random () % bytes->len] = next_random ();
          break;
        case 1: /* truncate */
          if (bytes->len > 0)
            g_byte_array_set_size (bytes, next_random () % bytes->len);
          break;
        case 2: /* replace the digits at a random place with an edge value */
          {
            const gchar *value = edge_values[next_random () % G_N_ELEMENTS (edge_values)];
            gsize at = bytes->len ? next_random () % bytes->len : 0, end = at;
            while (end < bytes->len && g_ascii_isdigit (bytes->data[end]))
              end++;
            g_byte_array_remove_range (bytes, at, end - at);
            if (at <= bytes->len)
              {
                GByteArray *tail = g_byte_array_new ();
                g_byte_array_append (tail, bytes->data + at, bytes->len - at);
                g_byte_array_set_size (bytes, at);
                g_byte_array_append (bytes, (const guint8 *) value, strlen (value));
                g_byte_array_append (bytes, tail->data, tail->len);
                g_byte_array_unref (tail);
              }
          }
          break;
        default: /* duplicate a slice */
          if (bytes->len > 0)
            {
              gsize at = next_random () % bytes->len, wanted = 1 + next_random () % 64;
              /* (MIN evaluates its arguments twice: no call inside it) */
              gsize len = MIN (bytes->len - at, wanted);
              g_autofree guint8 *slice = g_memdup2 (bytes->data + at, len);
              g_byte_array_append (bytes, slice, len);
            }
          break;
        }
      run (bytes->data, bytes->len);
    }
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const gchar *const *) a, *(const gchar *const *) b);
}

static void
run_file (const gchar *path, guint mutations)
{
  g_autofree gchar *contents = NULL;
  g_autoptr (GError) error = NULL;
  gsize size;
  if (!g_file_get_contents (path, &contents, &size, &error))
    g_error ("%s", error->message);
  run ((const guint8 *) contents, size);
  mutate_and_run ((const guint8 *) contents, size, mutations);
}

int
main (int argc, char **argv)
{
  guint mutations = 0, files = 0;
  for (gint i = 1; i < argc; i++)
    {
      if (g_strcmp0 (argv[i], "--mutations") == 0 && i + 1 < argc)
        {
          mutations = atoi (argv[++i]);
          continue;
        }
      if (g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        {
          g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
          GDir *dir = g_dir_open (argv[i], 0, NULL);
          const gchar *name;
          while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
            g_ptr_array_add (names, g_build_filename (argv[i], name, NULL));
          if (dir != NULL)
            g_dir_close (dir);
          /* sorted, so that the mutations are the same on every machine */
          g_ptr_array_sort (names, compare_paths);
          for (guint n = 0; n < names->len; n++, files++)
            run_file (names->pdata[n], mutations);
        }
      else
        {
          run_file (argv[i], mutations);
          files++;
        }
    }
  if (files == 0)
    {
      g_printerr ("usage: %s [--mutations N] FILE_OR_DIR...\n", argv[0]);
      return 1;
    }
  printf ("%u corpus files, %" G_GUINT64_FORMAT " executions, no crash\n", files, executions);
  return 0;
}
