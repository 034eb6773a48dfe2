/* Image files for the command-line tools. */
#pragma once

#include "umgclip.h"

#include <gdk-pixbuf/gdk-pixbuf.h>

/* The image at path as 8-bit RGB without alpha (an alpha channel is composited on black:
 * CLIP expects three channels). Errors (UMGCLIP_ERROR_FILE) name the file. */
GdkPixbuf *umgclip_tool_load_rgb (const gchar *path, GError **error);

/* rgb prepared for the network as CLIP prepares it (umgclip_preprocess_rgb): [3, size, size]
 * floats, to be freed with g_free. */
gfloat *umgclip_tool_preprocess (UmgClipContext *ctx, GdkPixbuf *rgb, gint size);
