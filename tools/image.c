/* Image files for the command-line tools. */
#include "image.h"

GdkPixbuf *
umgclip_tool_load_rgb (const gchar *path, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GdkPixbuf) loaded = gdk_pixbuf_new_from_file (path, &local_error);
  GdkPixbuf *rgb;
  gint width, height;

  if (loaded == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "%s: %s", path, local_error->message);
      return NULL;
    }
  width = gdk_pixbuf_get_width (loaded);
  height = gdk_pixbuf_get_height (loaded);
  rgb = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, width, height);
  gdk_pixbuf_fill (rgb, 0);
  gdk_pixbuf_composite (loaded, rgb, 0, 0, width, height, 0, 0, 1, 1, GDK_INTERP_NEAREST, 255);
  return rgb;
}

gfloat *
umgclip_tool_preprocess (UmgClipContext *ctx, GdkPixbuf *rgb, gint size)
{
  gfloat *pixels = g_new (gfloat, 3 * (gsize) size * size);
  umgclip_preprocess_rgb (ctx, gdk_pixbuf_read_pixels (rgb), gdk_pixbuf_get_width (rgb),
                          gdk_pixbuf_get_height (rgb), gdk_pixbuf_get_rowstride (rgb), size,
                          pixels);
  return pixels;
}
