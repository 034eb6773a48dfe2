/* umgclipenc: attaches the frame's CLIP image embedding (and dense feature map) as
 * GstUmgClipEmbeddingMeta, for applications and for umgclipseg / umgcliptag downstream. */
#pragma once

#include "gstumgclipfilter.h"

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_ENC (gst_umgclip_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstUmgClipEnc, gst_umgclip_enc, GST, UMGCLIP_ENC, GstUmgClipFilter)

GST_ELEMENT_REGISTER_DECLARE (umgclipenc);

G_END_DECLS
