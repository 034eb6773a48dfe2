/* A loaded model: its configuration and its weights in one canonical form, whichever layout
 * (HuggingFace or OpenCLIP) and dtype the checkpoint used. Linear weights are [out, in]; the
 * attention's q, k and v projections are one [3 × width, width] matrix. */
#pragma once

#include "graph.h"
#include "umgclip.h"

G_BEGIN_DECLS

/* Indices into UmgModel.weights. */
typedef struct
{
  guint ln1_weight, ln1_bias; /* [width] */
  guint qkv_weight, qkv_bias; /* [3 width, width], [3 width]: q, then k, then v */
  guint out_weight, out_bias; /* [width, width], [width] */
  guint ln2_weight, ln2_bias; /* [width] */
  guint fc1_weight, fc1_bias; /* [mlp, width], [mlp] */
  guint fc2_weight, fc2_bias; /* [width, mlp], [width] */
} UmgLayerWeights;

typedef struct
{
  gint width, layers, heads, mlp_width;
  UmgActivation act;
  gfloat eps;
  UmgLayerWeights *layer; /* layers entries */
} UmgTower;

typedef struct
{
  UmgTower tower;
  gint image_size, patch_size, grid; /* grid = image_size / patch_size */
  guint patch_weight;                /* [width, 3 patch²] */
  guint class_embedding;             /* [width] */
  guint position_embedding;          /* [1 + grid², width] */
  guint ln_pre_weight, ln_pre_bias;
  guint ln_post_weight, ln_post_bias;
  guint projection;       /* [embed_dim, width] */
  gfloat mean[3], std[3]; /* pixel normalisation */
} UmgVision;

typedef struct
{
  UmgTower tower;
  gint context_length, vocab_size;
  guint token_embedding;    /* [vocab, width] */
  guint position_embedding; /* [context_length, width] */
  guint ln_final_weight, ln_final_bias;
  guint projection; /* [embed_dim, width] */
} UmgText;

typedef struct
{
  gchar *dir;
  gchar *layout; /* "huggingface" or "openclip" */
  gchar *dtype;  /* the checkpoint's main dtype, lower case */
  gint embed_dim;
  gfloat logit_scale; /* exp() applied */
  UmgVision vision;
  UmgText text;
  GArray *weights; /* UmgTensor */
  gpointer file;   /* UmgSafetensors, kept mapped */
} UmgModel;

UmgModel *umg_model_load (const gchar *dir, GError **error);
void umg_model_free (UmgModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgModel, umg_model_free)

static inline const UmgTensor *
umg_model_weight (const UmgModel *model, guint index)
{
  return &g_array_index (model->weights, UmgTensor, index);
}

/* A float32 copy of a weight, whatever its storage type. */
gfloat *umg_model_weight_f32 (const UmgModel *model, guint index);

G_END_DECLS
