/* umgclipindex: frame and region embeddings of every analysed frame into an index (a SQLite
 * file or PostgreSQL with pgvector) that `umgclip search` queries by text. */
#pragma once

#include "gstumgclipfilter.h"

G_BEGIN_DECLS

#define GST_TYPE_UMGCLIP_INDEX (gst_umgclip_index_get_type ())
G_DECLARE_FINAL_TYPE (GstUmgClipIndex, gst_umgclip_index, GST, UMGCLIP_INDEX, GstUmgClipFilter)

GST_ELEMENT_REGISTER_DECLARE (umgclipindex);

G_END_DECLS
