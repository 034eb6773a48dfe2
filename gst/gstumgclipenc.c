/* umgclipenc: one backbone pass per analysed frame, its result attached as
 * GstUmgClipEmbeddingMeta so that later elements and applications need no second pass. */
#include "gstumgclipenc.h"
#include "umgclipmeta.h"
#ifdef HAVE_GST_ANALYTICS
#include "gstumgclipanalytics.h"
#endif

#define DEFAULT_DENSE TRUE

enum
{
  PROP_0,
  PROP_DENSE,
};

struct _GstUmgClipEnc
{
  GstUmgClipFilter parent;
  gboolean dense; /* under the object lock */
};

G_DEFINE_TYPE (GstUmgClipEnc, gst_umgclip_enc, GST_TYPE_UMGCLIP_FILTER)
GST_ELEMENT_REGISTER_DEFINE (umgclipenc, "umgclipenc", GST_RANK_NONE, GST_TYPE_UMGCLIP_ENC)

static gboolean
gst_umgclip_enc_wants_dense (GstUmgClipFilter *filter)
{
  GstUmgClipEnc *enc = GST_UMGCLIP_ENC (filter);
  gboolean dense;
  GST_OBJECT_LOCK (enc);
  dense = enc->dense;
  GST_OBJECT_UNLOCK (enc);
  return dense;
}

static gboolean
gst_umgclip_enc_infer (GstUmgClipFilter *filter, UmgClipContext *context,
                       const GstUmgClipFrame *frame, const GstUmgClipFeatures *features,
                       GstUmgClipResult *result, GError **error)
{
  GstUmgClipEmbeddingMeta *meta = gst_buffer_add_umgclip_embedding_meta (
      result->metas, gst_umgclip_filter_get_model_id (filter), features->embedding, features->dim);
  meta->source_pts = frame->pts;
  if (features->dense != NULL)
    gst_umgclip_embedding_meta_set_dense (
        meta, umgclip_dense_mode_name (features->dense_mode), features->input_width,
        features->input_height, features->grid_width, features->grid_height, features->dense);
  return TRUE;
}

#ifdef HAVE_GST_ANALYTICS
/* The embedding also as a GstTensorMeta tensor (1.26), on every frame that carries it. */
static void
gst_umgclip_enc_apply (GstUmgClipFilter *filter, GstBuffer *buffer, const GstUmgClipResult *result,
                       gboolean own)
{
  const GstUmgClipEmbeddingMeta *embedding = gst_buffer_get_umgclip_embedding_meta (result->metas);
  if (embedding != NULL)
    gst_umgclip_analytics_add_embedding (buffer, embedding);
}
#endif

static void
gst_umgclip_enc_set_property (GObject *object, guint prop_id, const GValue *value,
                              GParamSpec *pspec)
{
  GstUmgClipEnc *enc = GST_UMGCLIP_ENC (object);
  switch (prop_id)
    {
    case PROP_DENSE:
      GST_OBJECT_LOCK (enc);
      enc->dense = g_value_get_boolean (value);
      GST_OBJECT_UNLOCK (enc);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
}

static void
gst_umgclip_enc_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipEnc *enc = GST_UMGCLIP_ENC (object);
  switch (prop_id)
    {
    case PROP_DENSE:
      GST_OBJECT_LOCK (enc);
      g_value_set_boolean (value, enc->dense);
      GST_OBJECT_UNLOCK (enc);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
}

static void
gst_umgclip_enc_init (GstUmgClipEnc *enc)
{
  enc->dense = DEFAULT_DENSE;
}

static void
gst_umgclip_enc_class_init (GstUmgClipEncClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstUmgClipFilterClass *filter_class = GST_UMGCLIP_FILTER_CLASS (klass);

  gobject_class->set_property = gst_umgclip_enc_set_property;
  gobject_class->get_property = gst_umgclip_enc_get_property;

  g_object_class_install_property (
      gobject_class, PROP_DENSE,
      g_param_spec_boolean (
          "dense", "Dense map",
          "Also attach the per-patch feature map, so that umgclipseg and "
          "umgcliptag downstream reuse it instead of running the model again",
          DEFAULT_DENSE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_set_static_metadata (
      element_class, "UMG-CLIP image encoder", "Filter/Analyzer/Video",
      "Attaches the CLIP image embedding of each frame (and its dense feature map) as "
      "GstUmgClipEmbeddingMeta; video passes through unchanged",
      "gst-umgclip authors");

  filter_class->needs_labels = FALSE;
  filter_class->wants_dense = gst_umgclip_enc_wants_dense;
  filter_class->infer = gst_umgclip_enc_infer;
#ifdef HAVE_GST_ANALYTICS
  filter_class->apply = gst_umgclip_enc_apply;
#endif
}
