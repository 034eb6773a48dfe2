/* umgclip: the runtime from the command line. Works on a model directory and prints JSON on
 * standard output; errors go to standard error with a non-zero exit status. */
#include "image.h"
#include "npy.h"
#include "search.h"
#include "umgclip.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_TEMPLATE "a photo of a {}."

typedef struct
{
  const gchar *command;
  const gchar *model;
  GPtrArray *positional; /* operands after the command (the model taken out) */
  const gchar *device;
  const gchar *dense_mode;
  const gchar *tensor;
  const gchar *out;
  const gchar *boxes;
  const gchar *labels;
  const gchar *stuff;
  const gchar *instances;
  const gchar *db;
  const gchar *stream;
  const gchar *since;
  const gchar *until;
  const gchar *thumbnails;
  GPtrArray *templates;
  gint size;
  gint iterations;
  gint top_k;
  gint min_area;
  gdouble threshold;
  gdouble thing_affinity;
  gboolean normalize;
  gboolean panoptic;
  gboolean regions;
  gboolean frames_only;
} Args;

static void
usage (FILE *stream)
{
  fputs ("usage:\n"
         "  umgclip info [MODEL]\n"
         "  umgclip tokenize [MODEL] TEXT...\n"
         "  umgclip encode-text [MODEL] TEXT...\n"
         "  umgclip encode-image [MODEL] (IMAGE | --tensor X.npy)\n"
         "  umgclip encode-dense [MODEL] (IMAGE | --tensor X.npy) [--dense-mode M] --out F.npy\n"
         "  umgclip encode-regions [MODEL] (IMAGE | --tensor X.npy) --boxes \"x,y,w,h;...\"\n"
         "  umgclip classify [MODEL] IMAGE --labels \"cat,dog,car\" [--template T]...\n"
         "  umgclip segment [MODEL] IMAGE --labels L [--stuff S] [--panoptic] --out MASK.png|.npy\n"
         "                 [--instances INSTANCES.png|.npy] [--threshold T] [--min-area N]\n"
         "                 [--thing-affinity A]\n"
         "  umgclip tag [MODEL] IMAGE --boxes \"x,y,w,h;...\" --labels L [--top-k K]\n"
         "  umgclip bench [MODEL] [--size N] [--iterations N]\n"
         "  umgclip search --db LOCATION TEXT [--top-k K] [--regions | --frames-only]\n"
         "                 [--stream S] [--since T] [--until T] [--thumbnails DIR]\n"
         "                 [--template T]...\n"
         "MODEL: a model directory (HuggingFace or OpenCLIP layout); also --model DIR. Without\n"
         "one: $UMGCLIP_MODEL, else the shipped model. For tokenize and encode-text the first\n"
         "operand is the model only when it is a directory.\n"
         "options:\n"
         "  --device auto|cpu|vulkan|vulkan:N   (default auto: a GPU, else the CPU)\n"
         "  --dense-mode naclip|clearclip|sclip|maskclip   (default naclip)\n"
         "  --normalize      L2-normalise printed embeddings\n"
         "  --size N         input size for IMAGE (default: the model's) or for bench\n"
         "  segment: maps cover the network input (IMAGE resized and centre-cropped to SIZE);\n"
         "           label ids, 255 (PNG) or -1 (.npy) where no label reaches --threshold;\n"
         "           --instances: segment ids, 0 for none; --thing-affinity: as umgclipseg's\n"
         "           thing-affinity (default 0.7)\n"
         "  --template T     prompt template with {} for classify (repeatable, or several "
         "separated by ';', or imagenet for OpenAI's 80; default "
         "\"" DEFAULT_TEMPLATE "\"; for search \"{}\", the text as given)\n"
         "  search: LOCATION is umgclipindex's (a SQLite file, or postgresql://HOST/DB);\n"
         "          the model is the one the index records unless --model names one;\n"
         "          T is ISO 8601 (2026-12-01T08:30:00Z) or seconds since the epoch;\n"
         "          frames score the best of their own and their regions' cosines (a hit\n"
         "          that a region won carries its box), --frames-only their own alone;\n"
         "          --regions: regions instead of frames\n",
         stream);
}

static gboolean
parse_int (const gchar *option, const gchar *text, gint minimum, gint *out, GError **error)
{
  guint64 value;
  if (!g_ascii_string_to_unsigned (text, 10, minimum, 1 << 20, &value, NULL))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   minimum > 0 ? "%s: '%s' is not a positive integer"
                               : "%s: '%s' is not a whole number",
                   option, text);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

/* A number from min to max as the value of option, or an error that says so. */
static gboolean
parse_number_in (const gchar *option, const gchar *text, gdouble min, gdouble max, gdouble *out,
                 GError **error)
{
  gchar *end = NULL;
  const gdouble value = text != NULL ? g_ascii_strtod (text, &end) : 0;
  if (text == NULL || end == text || *end != '\0' || !(value >= min && value <= max))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "%s needs a number from %g to %g",
                   option, min, max);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

static gboolean
parse_args (gint argc, gchar **argv, Args *args, GError **error)
{
  args->positional = g_ptr_array_new ();
  args->templates = g_ptr_array_new ();
  args->dense_mode = "naclip";
  args->iterations = 10;
  args->top_k = 5;
  args->thing_affinity = UMGCLIP_DEFAULT_THING_AFFINITY;
  for (gint i = 1; i < argc; i++)
    {
      const gchar *arg = argv[i];
      const gchar **string_option = NULL;
      gint *int_option = NULL;

      if (g_strcmp0 (arg, "--normalize") == 0)
        {
          args->normalize = TRUE;
          continue;
        }
      if (g_strcmp0 (arg, "--panoptic") == 0)
        {
          args->panoptic = TRUE;
          continue;
        }
      if (g_strcmp0 (arg, "--regions") == 0)
        {
          args->regions = TRUE;
          continue;
        }
      if (g_strcmp0 (arg, "--frames-only") == 0)
        {
          args->frames_only = TRUE;
          continue;
        }
      if (g_strcmp0 (arg, "--threshold") == 0 || g_strcmp0 (arg, "--thing-affinity") == 0)
        {
          const gboolean threshold = g_strcmp0 (arg, "--threshold") == 0;
          if (!parse_number_in (arg, i + 1 < argc ? argv[i + 1] : NULL, threshold ? 0 : -1,
                                threshold ? 1 : 2,
                                threshold ? &args->threshold : &args->thing_affinity, error))
            return FALSE;
          i++;
          continue;
        }
      if (g_strcmp0 (arg, "--device") == 0)
        string_option = &args->device;
      else if (g_strcmp0 (arg, "--dense-mode") == 0)
        string_option = &args->dense_mode;
      else if (g_strcmp0 (arg, "--tensor") == 0)
        string_option = &args->tensor;
      else if (g_strcmp0 (arg, "--out") == 0)
        string_option = &args->out;
      else if (g_strcmp0 (arg, "--boxes") == 0)
        string_option = &args->boxes;
      else if (g_strcmp0 (arg, "--labels") == 0)
        string_option = &args->labels;
      else if (g_strcmp0 (arg, "--model") == 0)
        string_option = &args->model;
      else if (g_strcmp0 (arg, "--stuff") == 0)
        string_option = &args->stuff;
      else if (g_strcmp0 (arg, "--instances") == 0)
        string_option = &args->instances;
      else if (g_strcmp0 (arg, "--db") == 0)
        string_option = &args->db;
      else if (g_strcmp0 (arg, "--stream") == 0)
        string_option = &args->stream;
      else if (g_strcmp0 (arg, "--since") == 0)
        string_option = &args->since;
      else if (g_strcmp0 (arg, "--until") == 0)
        string_option = &args->until;
      else if (g_strcmp0 (arg, "--thumbnails") == 0)
        string_option = &args->thumbnails;
      else if (g_strcmp0 (arg, "--top-k") == 0)
        int_option = &args->top_k;
      else if (g_strcmp0 (arg, "--min-area") == 0)
        int_option = &args->min_area;
      else if (g_strcmp0 (arg, "--size") == 0)
        int_option = &args->size;
      else if (g_strcmp0 (arg, "--iterations") == 0)
        int_option = &args->iterations;
      else if (g_strcmp0 (arg, "--template") != 0)
        {
          if (g_str_has_prefix (arg, "--"))
            {
              g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "unknown option %s", arg);
              return FALSE;
            }
          if (args->command == NULL)
            args->command = arg;
          else
            g_ptr_array_add (args->positional, (gpointer) arg);
          continue;
        }
      if (i + 1 >= argc)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "%s needs a value", arg);
          return FALSE;
        }
      i++;
      if (string_option != NULL)
        *string_option = argv[i];
      else if (int_option != NULL)
        {
          if (!parse_int (arg, argv[i], int_option == &args->min_area ? 0 : 1, int_option, error))
            return FALSE;
        }
      else
        g_ptr_array_add (args->templates, argv[i]);
    }
  if (args->command == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "a command is needed");
      return FALSE;
    }
  return TRUE;
}

/* MODEL is optional: without --model, the first operand is the model when the command has
 * more operands than it needs (inputs counts IMAGE and TEXT operands; -1: any number, then
 * the first operand is the model only if it is a directory); else the default model. */
static void
take_model (Args *args, gint inputs)
{
  GPtrArray *operands = args->positional;
  gboolean first_is_model;

  if (args->model != NULL)
    return;
  if (inputs < 0)
    first_is_model
        = operands->len > 0 && g_file_test (g_ptr_array_index (operands, 0), G_FILE_TEST_IS_DIR);
  else
    first_is_model = operands->len > (guint) inputs;
  if (first_is_model)
    args->model = g_ptr_array_steal_index (operands, 0);
  else
    args->model = umgclip_default_model ();
}

static void
print_vector (GString *out, const gfloat *v, gsize n)
{
  g_string_append_c (out, '[');
  for (gsize i = 0; i < n; i++)
    g_string_append_printf (out, "%s%.9g", i ? ", " : "", v[i]);
  g_string_append_c (out, ']');
}

static void
print_vectors (GString *out, const gchar *key, gfloat *v, gsize rows, gsize cols,
               gboolean normalize)
{
  g_string_append_printf (out, "{\"%s\": [", key);
  for (gsize r = 0; r < rows; r++)
    {
      if (normalize)
        umgclip_l2_normalize (v + r * cols, cols);
      if (r)
        g_string_append (out, ", ");
      print_vector (out, v + r * cols, cols);
    }
  g_string_append (out, "]}\n");
}

/* text as a JSON string (g_strescape would write octal escapes, which JSON lacks) */
static void
append_json_string (GString *out, const gchar *text)
{
  g_autoptr (JsonNode) node = json_node_init_string (json_node_alloc (), text);
  g_autofree gchar *json = json_to_string (node, FALSE);
  g_string_append (out, json);
}

/* The network input: a .npy tensor [1, 3, H, W] as given, or an image file prepared as CLIP
 * prepares it. */
static gfloat *
load_input (UmgClipContext *ctx, const Args *args, gint *width, gint *height, GError **error)
{
  if (args->tensor != NULL)
    {
      UmgArray array;
      if (!umg_npy_load (args->tensor, &array, error))
        return NULL;
      if (array.n_dims != 4 || array.shape[0] != 1 || array.shape[1] != 3)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                       "%s: expected a float32 array of shape [1, 3, H, W]", args->tensor);
          umg_array_clear (&array);
          return NULL;
        }
      *height = array.shape[2];
      *width = array.shape[3];
      return array.data;
    }
  if (args->positional->len < 1)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "an IMAGE or --tensor is needed");
      return NULL;
    }
  {
    const gchar *path = g_ptr_array_index (args->positional, 0);
    g_autoptr (GdkPixbuf) rgb = umgclip_tool_load_rgb (path, error);
    gint size = args->size > 0 ? args->size : umgclip_context_get_info (ctx)->image_size;

    if (rgb == NULL)
      return NULL;
    *width = *height = size;
    return umgclip_tool_preprocess (ctx, rgb, size);
  }
}

static gboolean
parse_boxes (const gchar *text, GArray *boxes, GError **error)
{
  g_auto (GStrv) items = g_strsplit (text ? text : "", ";", -1);
  for (guint i = 0; items[i] != NULL; i++)
    {
      g_auto (GStrv) fields = NULL;
      gfloat box[4];
      if (*g_strstrip (items[i]) == '\0')
        continue;
      fields = g_strsplit (items[i], ",", -1);
      if (g_strv_length (fields) != 4)
        goto bad;
      for (guint f = 0; f < 4; f++)
        {
          gchar *end;
          box[f] = g_ascii_strtod (fields[f], &end);
          if (end == fields[f] || *end != '\0')
            goto bad;
        }
      if (box[2] <= 0 || box[3] <= 0)
        goto bad;
      g_array_append_vals (boxes, box, 4);
      continue;
    bad:
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "--boxes: '%s' is not x,y,w,h with positive width and height", items[i]);
      return FALSE;
    }
  if (boxes->len == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "--boxes: no box given");
      return FALSE;
    }
  return TRUE;
}

static gboolean
command_info (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  g_string_append_printf (out,
                          "{\"model\": \"%s\", \"layout\": \"%s\", \"dtype\": \"%s\", "
                          "\"embed_dim\": %d, \"vision\": {\"image_size\": %d, \"patch_size\": %d, "
                          "\"width\": %d, \"layers\": %d, \"heads\": %d, \"act\": \"%s\"}, "
                          "\"text\": {\"width\": %d, \"layers\": %d, \"heads\": %d, "
                          "\"context_length\": %d, \"vocab_size\": %d, \"act\": \"%s\"}, "
                          "\"logit_scale\": %.9g, \"backend\": ",
                          args->model, info->layout, info->dtype, info->embed_dim, info->image_size,
                          info->patch_size, info->vision_width, info->vision_layers,
                          info->vision_heads, info->vision_act, info->text_width, info->text_layers,
                          info->text_heads, info->context_length, info->vocab_size, info->text_act,
                          info->logit_scale);
  append_json_string (out, info->backend);
  g_string_append (out, "}\n");
  return TRUE;
}

static gboolean
need_texts (const Args *args, GError **error)
{
  if (args->positional->len == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "%s needs at least one TEXT",
                   args->command);
      return FALSE;
    }
  return TRUE;
}

static gboolean
command_tokenize (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const gint length = umgclip_context_get_info (ctx)->context_length;
  g_autofree gint32 *tokens = g_new (gint32, length);
  if (!need_texts (args, error))
    return FALSE;
  g_string_append (out, "{\"tokens\": [");
  for (guint t = 0; t < args->positional->len; t++)
    {
      gint count = umgclip_tokenize (ctx, g_ptr_array_index (args->positional, t), tokens, error);
      if (count < 0)
        return FALSE;
      g_string_append (out, t ? ", [" : "[");
      for (gint i = 0; i < count; i++)
        g_string_append_printf (out, "%s%d", i ? ", " : "", tokens[i]);
      g_string_append_c (out, ']');
    }
  g_string_append (out, "]}\n");
  return TRUE;
}

static gboolean
command_encode_text (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const gint embed = umgclip_context_get_info (ctx)->embed_dim;
  g_autofree gfloat *embeddings = NULL;
  if (!need_texts (args, error))
    return FALSE;
  embeddings = g_new (gfloat, (gsize) args->positional->len * embed);
  if (!umgclip_encode_text (ctx, (const gchar *const *) args->positional->pdata,
                            args->positional->len, embeddings, error))
    return FALSE;
  print_vectors (out, "embeddings", embeddings, args->positional->len, embed, args->normalize);
  return TRUE;
}

static gboolean
command_encode_image (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const gint embed = umgclip_context_get_info (ctx)->embed_dim;
  g_autofree gfloat *embedding = g_new (gfloat, embed);
  UmgClipImageRequest request = { .embedding = embedding };
  gint width, height;
  g_autofree gfloat *pixels = load_input (ctx, args, &width, &height, error);

  if (pixels == NULL || !umgclip_encode_image (ctx, pixels, width, height, &request, error))
    return FALSE;
  if (args->normalize)
    umgclip_l2_normalize (embedding, embed);
  g_string_append (out, "{\"embedding\": ");
  print_vector (out, embedding, embed);
  g_string_append (out, "}\n");
  return TRUE;
}

static gboolean
command_encode_dense (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  UmgClipImageRequest request = { 0 };
  gint width, height;
  g_autofree gfloat *pixels = NULL;
  g_autofree gfloat *dense = NULL;
  gsize shape[3];

  if (args->out == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "encode-dense needs --out F.npy");
      return FALSE;
    }
  if (!umgclip_parse_dense_mode (args->dense_mode, &request.dense_mode, error))
    return FALSE;
  pixels = load_input (ctx, args, &width, &height, error);
  if (pixels == NULL)
    return FALSE;
  shape[0] = height / info->patch_size;
  shape[1] = width / info->patch_size;
  shape[2] = info->embed_dim;
  request.dense = dense = g_new (gfloat, shape[0] * shape[1] * shape[2]);
  if (!umgclip_encode_image (ctx, pixels, width, height, &request, error))
    return FALSE;
  if (args->normalize)
    for (gsize cell = 0; cell < shape[0] * shape[1]; cell++)
      umgclip_l2_normalize (dense + cell * shape[2], shape[2]);
  if (!umg_npy_save (args->out, dense, 3, shape, error))
    return FALSE;
  g_string_append_printf (
      out, "{\"shape\": [%" G_GSIZE_FORMAT ", %" G_GSIZE_FORMAT ", %" G_GSIZE_FORMAT "]}\n",
      shape[0], shape[1], shape[2]);
  return TRUE;
}

/* Region embeddings (n_boxes × embed_dim, L2-normalised) of the --boxes of the input;
 * boxes receives their x, y, w, h. */
static gfloat *
encode_boxes (UmgClipContext *ctx, const Args *args, GArray *boxes, GError **error)
{
  const gint embed = umgclip_context_get_info (ctx)->embed_dim;
  UmgClipImageRequest request = { 0 };
  g_autofree gfloat *pixels = NULL;
  g_autofree gfloat *regions = NULL;
  gint width, height;

  if (!parse_boxes (args->boxes, boxes, error)
      || !umgclip_parse_dense_mode (args->dense_mode, &request.dense_mode, error))
    return NULL;
  pixels = load_input (ctx, args, &width, &height, error);
  if (pixels == NULL)
    return NULL;
  request.boxes = (const gfloat *) boxes->data;
  request.n_boxes = boxes->len / 4;
  request.regions = regions = g_new (gfloat, (gsize) request.n_boxes * embed);
  if (!umgclip_encode_image (ctx, pixels, width, height, &request, error))
    return NULL;
  return g_steal_pointer (&regions);
}

static gboolean
command_encode_regions (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  g_autoptr (GArray) boxes = g_array_new (FALSE, FALSE, sizeof (gfloat));
  g_autofree gfloat *regions = encode_boxes (ctx, args, boxes, error);

  if (regions == NULL)
    return FALSE;
  print_vectors (out, "embeddings", regions, boxes->len / 4,
                 umgclip_context_get_info (ctx)->embed_dim, FALSE);
  return TRUE;
}

/* The labels of --labels (comma-separated, spaces around each dropped, empty ones skipped)
 * and their embeddings, prompt-ensembled over the --template prompts. */
typedef struct
{
  GStrv split;
  GPtrArray *names;   /* const gchar *, into split */
  gfloat *embeddings; /* names->len × embed_dim, normalised */
} LabelSet;

static void
label_set_clear (LabelSet *set)
{
  g_clear_pointer (&set->split, g_strfreev);
  g_clear_pointer (&set->names, g_ptr_array_unref);
  g_clear_pointer (&set->embeddings, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (LabelSet, label_set_clear)

/* The --template prompts as the elements read prompt-template: each may list several separated
 * by ';', "imagenet" is OpenAI's 80; none given: DEFAULT_TEMPLATE. */
static GStrv
prompt_templates (const Args *args, const gchar *fallback)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();
  for (guint i = 0; i < args->templates->len; i++)
    {
      g_auto (GStrv) expanded = umgclip_prompt_templates (args->templates->pdata[i]);
      g_strv_builder_addv (builder, (const gchar **) expanded);
    }
  if (args->templates->len == 0)
    g_strv_builder_add (builder, fallback);
  return g_strv_builder_end (builder);
}

static gboolean
label_set_encode (UmgClipContext *ctx, const Args *args, LabelSet *set, GError **error)
{
  const gint embed = umgclip_context_get_info (ctx)->embed_dim;
  g_auto (GStrv) templates = NULL;

  if (!umgclip_check_utf8 ("--labels", args->labels, error))
    return FALSE;
  set->split = umgclip_split_list (args->labels, ",");
  set->names = g_ptr_array_new ();
  for (guint i = 0; set->split[i] != NULL; i++)
    g_ptr_array_add (set->names, set->split[i]);
  if (set->names->len == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "%s needs --labels with at least one label", args->command);
      return FALSE;
    }
  set->embeddings = g_new (gfloat, (gsize) set->names->len * embed);
  templates = prompt_templates (args, DEFAULT_TEMPLATE);
  return umgclip_encode_labels (ctx, (const gchar *const *) set->names->pdata, set->names->len,
                                (const gchar *const *) templates, g_strv_length (templates),
                                set->embeddings, error);
}

static gboolean
command_classify (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const gint embed = umgclip_context_get_info (ctx)->embed_dim;
  g_auto (LabelSet) set = { 0 };
  g_autofree gfloat *embedding = g_new (gfloat, embed);
  g_autofree gfloat *scores = NULL;
  g_autofree guint *order = NULL;
  UmgClipImageRequest request = { .embedding = embedding };
  g_autofree gfloat *pixels = NULL;
  gint width, height;
  guint n;

  if (!label_set_encode (ctx, args, &set, error))
    return FALSE;
  n = set.names->len;
  pixels = load_input (ctx, args, &width, &height, error);
  if (pixels == NULL || !umgclip_encode_image (ctx, pixels, width, height, &request, error))
    return FALSE;
  scores = g_new (gfloat, n);
  umgclip_score (ctx, embedding, set.embeddings, n, scores);

  order = g_new (guint, n);
  for (guint i = 0; i < n; i++)
    order[i] = i;
  for (guint i = 1; i < n; i++) /* insertion sort, best first, stable */
    for (guint j = i; j > 0 && scores[order[j]] > scores[order[j - 1]]; j--)
      {
        guint swap = order[j];
        order[j] = order[j - 1];
        order[j - 1] = swap;
      }
  g_string_append (out, "{\"results\": [");
  for (guint i = 0; i < n; i++)
    {
      g_string_append (out, i ? ", {\"label\": " : "{\"label\": ");
      append_json_string (out, g_ptr_array_index (set.names, order[i]));
      g_string_append_printf (out, ", \"score\": %.6g}", scores[order[i]]);
    }
  g_string_append (out, "]}\n");
  return TRUE;
}

/* A [height, width] map as .npy (float32) or, for a name ending in .png, as an 8-bit grey PNG
 * (values above 254 do not fit and fail). */
static gboolean
save_map (const gchar *path, const guint16 *map, gint width, gint height, guint16 none,
          gfloat none_value, GError **error)
{
  gsize n = (gsize) width * height;
  if (g_str_has_suffix (path, ".png"))
    {
      g_autoptr (GdkPixbuf) png = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, width, height);
      guint8 *pixels = gdk_pixbuf_get_pixels (png);
      gint stride = gdk_pixbuf_get_rowstride (png);
      for (gsize i = 0; i < n; i++)
        {
          guint8 value = map[i] == none ? 255 : map[i];
          if (map[i] != none && map[i] > 254)
            {
              g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                           "%s: value %u does not fit an 8-bit PNG; write .npy", path, map[i]);
              return FALSE;
            }
          memset (pixels + (i / width) * stride + (i % width) * 3, value, 3);
        }
      return gdk_pixbuf_save (png, path, "png", error, NULL);
    }
  {
    g_autofree gfloat *values = g_new (gfloat, n);
    gsize shape[2] = { height, width };
    for (gsize i = 0; i < n; i++)
      values[i] = map[i] == none ? none_value : map[i];
    return umg_npy_save (path, values, 2, shape, error);
  }
}

/* Semantic or panoptic segmentation of the network input (IMAGE prepared as CLIP prepares it)
 * for --labels; --stuff names the labels merged per label in panoptic mode. */
static gboolean
command_segment (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  g_auto (LabelSet) set = { 0 };
  g_auto (UmgClipSegmentation) seg = { 0 };
  g_autofree gboolean *is_thing = NULL;
  g_autofree gfloat *dense = NULL;
  g_autofree gfloat *pixels = NULL;
  UmgClipImageRequest request = { 0 };
  gint width, height, grid_w, grid_h;

  if (args->out == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "segment needs --out MASK.png or MASK.npy");
      return FALSE;
    }
  if (!umgclip_parse_dense_mode (args->dense_mode, &request.dense_mode, error)
      || !label_set_encode (ctx, args, &set, error))
    return FALSE;
  /* the elements' rule for stuff-labels: case-insensitive names */
  is_thing = umgclip_things_from_stuff ((const gchar *const *) set.names->pdata, set.names->len,
                                        args->stuff);
  pixels = load_input (ctx, args, &width, &height, error);
  if (pixels == NULL)
    return FALSE;
  grid_w = width / info->patch_size;
  grid_h = height / info->patch_size;
  request.dense = dense = g_new (gfloat, (gsize) grid_w * grid_h * info->embed_dim);
  if (!umgclip_encode_image (ctx, pixels, width, height, &request, error)
      || !umgclip_segment (dense, grid_w, grid_h, info->embed_dim, set.embeddings, set.names->len,
                           is_thing, info->logit_scale, width, height, args->threshold,
                           args->min_area, (gfloat) args->thing_affinity, args->panoptic, &seg,
                           error)
      || !save_map (args->out, seg.class_map, width, height, UMGCLIP_CLASS_NONE, -1, error)
      || (args->instances != NULL
          && !save_map (args->instances, seg.instance_map, width, height, G_MAXUINT16, 0, error)))
    return FALSE;
  g_string_append_printf (out, "{\"width\": %d, \"height\": %d, \"segments\": [", width, height);
  for (guint i = 0; i < seg.n_segments; i++)
    {
      const UmgClipSegment *segment = &seg.segments[i];
      g_string_append_printf (out, "%s{\"id\": %u, \"label\": ", i ? ", " : "", segment->id);
      append_json_string (out, g_ptr_array_index (set.names, segment->label_id));
      g_string_append_printf (out,
                              ", \"label_id\": %u, \"score\": %.6g, \"is_thing\": %s, "
                              "\"box\": [%d, %d, %d, %d], \"area\": %u}",
                              segment->label_id, segment->score,
                              segment->is_thing ? "true" : "false", segment->x, segment->y,
                              segment->w, segment->h, segment->area);
    }
  g_string_append (out, "]}\n");
  return TRUE;
}

/* The --top-k best --labels of each box, pooled from the dense map by RoI-Align. */
static gboolean
command_tag (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  g_auto (LabelSet) set = { 0 };
  g_autoptr (GArray) boxes = g_array_new (FALSE, FALSE, sizeof (gfloat));
  g_autofree gfloat *regions = NULL;
  g_autofree guint *ids = NULL;
  g_autofree gfloat *scores = NULL;
  guint top_k, n_boxes;

  if (!label_set_encode (ctx, args, &set, error)
      || (regions = encode_boxes (ctx, args, boxes, error)) == NULL)
    return FALSE;
  top_k = MIN ((guint) args->top_k, set.names->len);
  n_boxes = boxes->len / 4;
  ids = g_new (guint, (gsize) n_boxes * top_k);
  scores = g_new (gfloat, (gsize) n_boxes * top_k);
  if (!umgclip_rank_labels (regions, n_boxes, umgclip_context_get_info (ctx)->embed_dim,
                            set.embeddings, set.names->len,
                            umgclip_context_get_info (ctx)->logit_scale, top_k, ids, scores, error))
    return FALSE;
  g_string_append (out, "{\"regions\": [");
  for (guint r = 0; r < n_boxes; r++)
    {
      const gfloat *box = &g_array_index (boxes, gfloat, 4 * r);
      g_string_append_printf (out, "%s{\"box\": [%g, %g, %g, %g], \"tags\": [", r ? ", " : "",
                              box[0], box[1], box[2], box[3]);
      for (guint k = 0; k < top_k; k++)
        {
          g_string_append (out, k ? ", {\"label\": " : "{\"label\": ");
          append_json_string (out, g_ptr_array_index (set.names, ids[r * top_k + k]));
          g_string_append_printf (out, ", \"score\": %.6g}", scores[r * top_k + k]);
        }
      g_string_append (out, "]}");
    }
  g_string_append (out, "]}\n");
  return TRUE;
}

static gint
compare_doubles (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;
  return (x > y) - (x < y);
}

/* Median milliseconds of iterations calls, after one warm-up call that also plans. */
static gboolean
time_pass (gint iterations, gboolean (*pass) (UmgClipContext *, gpointer, GError **),
           UmgClipContext *ctx, gpointer data, gdouble *median_ms, GError **error)
{
  g_autofree gdouble *times = g_new (gdouble, iterations);
  if (!pass (ctx, data, error))
    return FALSE;
  for (gint i = 0; i < iterations; i++)
    {
      gint64 start = g_get_monotonic_time ();
      if (!pass (ctx, data, error))
        return FALSE;
      times[i] = (g_get_monotonic_time () - start) / 1000.0;
    }
  qsort (times, iterations, sizeof (gdouble), compare_doubles);
  *median_ms = times[iterations / 2];
  return TRUE;
}

typedef struct
{
  gfloat *pixels;
  gint size;
  UmgClipImageRequest request;
} ImagePass;

static gboolean
image_pass (UmgClipContext *ctx, gpointer data, GError **error)
{
  ImagePass *pass = data;
  return umgclip_encode_image (ctx, pass->pixels, pass->size, pass->size, &pass->request, error);
}

static gboolean
text_pass (UmgClipContext *ctx, gpointer data, GError **error)
{
  static const gchar *const texts[] = { "a photo of a cat" };
  return umgclip_encode_text (ctx, texts, 1, data, error);
}

static gboolean
command_bench (UmgClipContext *ctx, const Args *args, GString *out, GError **error)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  gint size = args->size > 0 ? args->size : info->image_size;
  gsize cells = (gsize) (size / info->patch_size) * (size / info->patch_size);
  g_autofree gfloat *pixels = g_new (gfloat, 3 * (gsize) size * size);
  g_autofree gfloat *embedding = g_new (gfloat, info->embed_dim);
  g_autofree gfloat *dense = g_new (gfloat, cells * info->embed_dim);
  g_autofree gfloat *text = g_new (gfloat, info->embed_dim);
  ImagePass pass = { pixels, size, { .embedding = embedding } };
  gdouble image_ms, dense_ms, text_ms;
  GRand *rand = g_rand_new_with_seed (1);

  for (gsize i = 0; i < 3 * (gsize) size * size; i++)
    pixels[i] = g_rand_double_range (rand, -2, 2);
  g_rand_free (rand);
  if (!time_pass (args->iterations, image_pass, ctx, &pass, &image_ms, error))
    return FALSE;
  pass.request.dense = dense;
  if (!umgclip_parse_dense_mode (args->dense_mode, &pass.request.dense_mode, error)
      || !time_pass (args->iterations, image_pass, ctx, &pass, &dense_ms, error)
      || !time_pass (args->iterations, text_pass, ctx, text, &text_ms, error))
    return FALSE;
  g_string_append_printf (out, "{\"backend\": ");
  append_json_string (out, info->backend);
  g_string_append_printf (out,
                          ", \"size\": %d, \"iterations\": %d, \"image_ms\": %.3f, "
                          "\"image_dense_ms\": %.3f, \"dense_mode\": \"%s\", \"text_ms\": %.3f}\n",
                          size, args->iterations, image_ms, dense_ms, args->dense_mode, text_ms);
  return TRUE;
}

/* The text against an index; the model comes from the index, not from an operand. */
static gboolean
run_search (const Args *args, GString *out, GError **error)
{
  g_auto (GStrv) templates = prompt_templates (args, "{}");
  g_autoptr (GString) query = g_string_new (NULL);
  UmgClipSearchOptions options = { .db = args->db,
                                   .templates = (const gchar *const *) templates,
                                   .model = args->model,
                                   .device = args->device,
                                   .top_k = args->top_k,
                                   .regions = args->regions,
                                   .frames_only = args->frames_only,
                                   .stream = args->stream,
                                   .since = args->since,
                                   .until = args->until,
                                   .thumbnails = args->thumbnails };

  /* the operands are the words of one query */
  for (guint i = 0; i < args->positional->len; i++)
    g_string_append_printf (query, "%s%s", i ? " " : "", (gchar *) args->positional->pdata[i]);
  options.query = query->str;
  return umgclip_tool_search (&options, out, error);
}

static const struct
{
  const gchar *name;
  gboolean (*run) (UmgClipContext *ctx, const Args *args, GString *out, GError **error);
  gint inputs; /* IMAGE or TEXT operands: 1 for an image (0 with --tensor), -1 any number */
} commands[] = {
  { "info", command_info, 0 },
  { "tokenize", command_tokenize, -1 },
  { "encode-text", command_encode_text, -1 },
  { "encode-image", command_encode_image, 1 },
  { "encode-dense", command_encode_dense, 1 },
  { "encode-regions", command_encode_regions, 1 },
  { "classify", command_classify, 1 },
  { "segment", command_segment, 1 },
  { "tag", command_tag, 1 },
  { "bench", command_bench, 0 },
};

int
main (int argc, char **argv)
{
  Args args = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx = NULL;
  g_autoptr (GString) out = g_string_new (NULL);
  UmgClipDeviceKind device;
  gint device_index;
  gint status = 1;

  if (argc == 2 && (g_strcmp0 (argv[1], "--help") == 0 || g_strcmp0 (argv[1], "-h") == 0))
    {
      usage (stdout);
      return 0;
    }
  if (!parse_args (argc, argv, &args, &error))
    {
      g_printerr ("umgclip: %s\n", error->message);
      usage (stderr);
      goto done;
    }
  if (g_strcmp0 (args.command, "search") == 0)
    {
      if (run_search (&args, out, &error))
        {
          fputs (out->str, stdout);
          status = 0;
        }
    }
  else
    for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
      if (g_strcmp0 (args.command, commands[i].name) == 0)
        {
          take_model (&args,
                      commands[i].inputs == 1 && args.tensor != NULL ? 0 : commands[i].inputs);
          if (!umgclip_parse_device (args.device, &device, &device_index, &error))
            break;
          ctx = umgclip_context_new (args.model, device, device_index, &error);
          if (ctx != NULL && commands[i].run (ctx, &args, out, &error))
            {
              fputs (out->str, stdout);
              status = 0;
            }
          break;
        }
  if (status != 0)
    {
      if (error != NULL)
        g_printerr ("umgclip: %s\n", error->message);
      else
        {
          g_printerr ("umgclip: unknown command '%s'\n", args.command);
          usage (stderr);
        }
    }
done:
  g_clear_pointer (&args.positional, g_ptr_array_unref);
  g_clear_pointer (&args.templates, g_ptr_array_unref);
  return status;
}
