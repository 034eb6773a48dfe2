/* umgclipoverlay: paints segmentation masks, region boxes and best tags onto the frame in place.
 * Text uses a built-in 5×7 bitmap font, so the plugin needs no pango or cairo. */
#include "gstumgclipoverlay.h"
#include "umgclipmeta.h"

#include <math.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_overlay_debug);
#define GST_CAT_DEFAULT gst_umgclip_overlay_debug

#define DEFAULT_ALPHA 0.3
#define DEFAULT_STUFF_ALPHA 0.12
#define DEFAULT_OUTLINE TRUE
#define DEFAULT_MIN_AREA 64
#define DEFAULT_DRAW_MASKS TRUE
#define DEFAULT_DRAW_BOXES TRUE
#define DEFAULT_DRAW_LABELS TRUE

/* The umgclip input formats: every one of them is 8 bits per component. */
#define OVERLAY_CAPS GST_VIDEO_CAPS_MAKE ("{ RGB, RGBA, RGBx, BGRx, BGRA, NV12, I420 }")

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (OVERLAY_CAPS));
static GstStaticPadTemplate src_template
    = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (OVERLAY_CAPS));

enum
{
  PROP_0,
  PROP_ALPHA,
  PROP_DRAW_MASKS,
  PROP_DRAW_BOXES,
  PROP_DRAW_LABELS,
  PROP_STUFF_ALPHA,
  PROP_OUTLINE,
  PROP_MIN_AREA,
};

struct _GstUmgClipOverlay
{
  GstVideoFilter parent;

  /* Properties, under the object lock. */
  gdouble alpha;
  gdouble stuff_alpha;
  gboolean outline;
  guint min_area;
  gboolean draw_masks;
  gboolean draw_boxes;
  gboolean draw_labels;

  /* Streaming thread only. */
  gboolean warned_unmappable; /* a buffer smaller than its caps was reported */
};

G_DEFINE_TYPE_WITH_CODE (GstUmgClipOverlay, gst_umgclip_overlay, GST_TYPE_VIDEO_FILTER,
                         GST_DEBUG_CATEGORY_INIT (gst_umgclip_overlay_debug, "umgclipoverlay", 0,
                                                  "umgclip overlay"))
GST_ELEMENT_REGISTER_DEFINE (umgclipoverlay, "umgclipoverlay", GST_RANK_NONE,
                             GST_TYPE_UMGCLIP_OVERLAY)

/* ---- the bitmap font ---- */

#define GLYPH_WIDTH 5
#define GLYPH_HEIGHT 7
#define GLYPH_ADVANCE (GLYPH_WIDTH + 1)
#define FIRST_GLYPH ' '
#define LAST_GLYPH '~'

/* Printable ASCII, one byte per row from the top, bit 4 is the leftmost column. */
static const guint8 font_5x7[LAST_GLYPH - FIRST_GLYPH + 1][GLYPH_HEIGHT] = {
  { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 }, /* space */
  { 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04 }, /* ! */
  { 0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00 }, /* " */
  { 0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A }, /* # */
  { 0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04 }, /* $ */
  { 0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03 }, /* % */
  { 0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D }, /* & */
  { 0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00 }, /* ' */
  { 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02 }, /* ( */
  { 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08 }, /* ) */
  { 0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00 }, /* * */
  { 0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00 }, /* + */
  { 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08 }, /* , */
  { 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00 }, /* - */
  { 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C }, /* . */
  { 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00 }, /* / */
  { 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E }, /* 0 */
  { 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E }, /* 1 */
  { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F }, /* 2 */
  { 0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E }, /* 3 */
  { 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02 }, /* 4 */
  { 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E }, /* 5 */
  { 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E }, /* 6 */
  { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 }, /* 7 */
  { 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E }, /* 8 */
  { 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C }, /* 9 */
  { 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00 }, /* : */
  { 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08 }, /* ; */
  { 0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02 }, /* < */
  { 0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00 }, /* = */
  { 0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08 }, /* > */
  { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04 }, /* ? */
  { 0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E }, /* @ */
  { 0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11 }, /* A */
  { 0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E }, /* B */
  { 0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E }, /* C */
  { 0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C }, /* D */
  { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F }, /* E */
  { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10 }, /* F */
  { 0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F }, /* G */
  { 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 }, /* H */
  { 0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E }, /* I */
  { 0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C }, /* J */
  { 0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11 }, /* K */
  { 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F }, /* L */
  { 0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11 }, /* M */
  { 0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11 }, /* N */
  { 0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E }, /* O */
  { 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10 }, /* P */
  { 0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D }, /* Q */
  { 0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11 }, /* R */
  { 0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E }, /* S */
  { 0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04 }, /* T */
  { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E }, /* U */
  { 0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04 }, /* V */
  { 0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A }, /* W */
  { 0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11 }, /* X */
  { 0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04 }, /* Y */
  { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F }, /* Z */
  { 0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E }, /* [ */
  { 0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00 }, /* \ */
  { 0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E }, /* ] */
  { 0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00 }, /* ^ */
  { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F }, /* _ */
  { 0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00 }, /* ` */
  { 0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F }, /* a */
  { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E }, /* b */
  { 0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E }, /* c */
  { 0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F }, /* d */
  { 0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E }, /* e */
  { 0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08 }, /* f */
  { 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E }, /* g */
  { 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11 }, /* h */
  { 0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E }, /* i */
  { 0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C }, /* j */
  { 0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12 }, /* k */
  { 0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E }, /* l */
  { 0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11 }, /* m */
  { 0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11 }, /* n */
  { 0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E }, /* o */
  { 0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10 }, /* p */
  { 0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01 }, /* q */
  { 0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10 }, /* r */
  { 0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E }, /* s */
  { 0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06 }, /* t */
  { 0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D }, /* u */
  { 0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04 }, /* v */
  { 0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A }, /* w */
  { 0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11 }, /* x */
  { 0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E }, /* y */
  { 0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F }, /* z */
  { 0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02 }, /* { */
  { 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04 }, /* | */
  { 0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08 }, /* } */
  { 0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00 }, /* ~ */
};

/* ---- painting on a frame of any of the accepted formats ---- */

/* The three colour components of a frame (R, G, B or Y, U, V) as plain pointers, so that
 * one blending routine serves packed RGB, planar I420 and semi-planar NV12. */
typedef struct
{
  guint8 *data[3];
  gint stride[3];
  gint pixel_stride[3];
  guint x_sub[3], y_sub[3]; /* log2 of the subsampling */
  gint width, height;
  gboolean is_yuv;
} Canvas;

/* A colour in the canvas's own components. */
typedef struct
{
  guint8 value[3];
} PaintColour;

static void
canvas_init (Canvas *canvas, GstVideoFrame *frame)
{
  const GstVideoFormatInfo *format = frame->info.finfo;
  for (guint component = 0; component < 3; component++)
    {
      canvas->data[component] = GST_VIDEO_FRAME_COMP_DATA (frame, component);
      canvas->stride[component] = GST_VIDEO_FRAME_COMP_STRIDE (frame, component);
      canvas->pixel_stride[component] = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, component);
      canvas->x_sub[component] = GST_VIDEO_FORMAT_INFO_W_SUB (format, component);
      canvas->y_sub[component] = GST_VIDEO_FORMAT_INFO_H_SUB (format, component);
    }
  canvas->width = GST_VIDEO_FRAME_WIDTH (frame);
  canvas->height = GST_VIDEO_FRAME_HEIGHT (frame);
  canvas->is_yuv = GST_VIDEO_FORMAT_INFO_IS_YUV (format);
}

/* BT.601 limited range for YUV frames: what videoconvert assumes for SD and what most
 * cameras send; the colours are for people, so the matrix of HD content is close enough. */
static PaintColour
canvas_colour (const Canvas *canvas, guint8 red, guint8 green, guint8 blue)
{
  PaintColour colour;
  if (!canvas->is_yuv)
    {
      colour.value[0] = red;
      colour.value[1] = green;
      colour.value[2] = blue;
      return colour;
    }
  colour.value[0] = (guint8) (16 + ((66 * red + 129 * green + 25 * blue + 128) >> 8));
  colour.value[1] = (guint8) (128 + ((-38 * red - 74 * green + 112 * blue + 128) >> 8));
  colour.value[2] = (guint8) (128 + ((112 * red - 94 * green - 18 * blue + 128) >> 8));
  return colour;
}

/* alpha in 0..256. A subsampled chroma sample is blended once, from the top-left pixel of its
 * block, so that filling an area does not blend it several times over. */
static inline void
canvas_blend (const Canvas *canvas, gint x, gint y, const PaintColour *colour, guint alpha)
{
  for (guint component = 0; component < 3; component++)
    {
      const guint x_sub = canvas->x_sub[component], y_sub = canvas->y_sub[component];
      guint8 *pixel;
      if ((x & ((1 << x_sub) - 1)) != 0 || (y & ((1 << y_sub) - 1)) != 0)
        continue;
      pixel = canvas->data[component] + (gsize) (y >> y_sub) * canvas->stride[component]
              + (gsize) (x >> x_sub) * canvas->pixel_stride[component];
      *pixel = (guint8) ((*pixel * (256 - alpha) + colour->value[component] * alpha + 128) >> 8);
    }
}

/* Blends the rectangle [x0, x1) × [y0, y1), clipped to the frame. */
static void
canvas_fill (const Canvas *canvas, gint x0, gint y0, gint x1, gint y1, const PaintColour *colour,
             guint alpha)
{
  x0 = CLAMP (x0, 0, canvas->width);
  x1 = CLAMP (x1, 0, canvas->width);
  y0 = CLAMP (y0, 0, canvas->height);
  y1 = CLAMP (y1, 0, canvas->height);
  for (gint y = y0; y < y1; y++)
    for (gint x = x0; x < x1; x++)
      canvas_blend (canvas, x, y, colour, alpha);
}

static void
canvas_outline (const Canvas *canvas, gint x, gint y, gint width, gint height, gint thickness,
                const PaintColour *colour)
{
  canvas_fill (canvas, x, y, x + width, y + thickness, colour, 256);
  canvas_fill (canvas, x, y + height - thickness, x + width, y + height, colour, 256);
  canvas_fill (canvas, x, y, x + thickness, y + height, colour, 256);
  canvas_fill (canvas, x + width - thickness, y, x + width, y + height, colour, 256);
}

static gint
text_width (const gchar *text, gint scale)
{
  gint n = (gint) strlen (text);
  return n > 0 ? (n * GLYPH_ADVANCE - 1) * scale : 0;
}

/* Opaque glyphs with their top-left corner at (x, y); bytes outside printable ASCII (UTF-8
 * included) show as '?'. */
static void
canvas_text (const Canvas *canvas, gint x, gint y, const gchar *text, gint scale,
             const PaintColour *colour)
{
  for (const guchar *c = (const guchar *) text; *c != '\0'; c++, x += GLYPH_ADVANCE * scale)
    {
      const guint8 *glyph
          = font_5x7[(*c >= FIRST_GLYPH && *c <= LAST_GLYPH ? *c : '?') - FIRST_GLYPH];
      for (gint row = 0; row < GLYPH_HEIGHT; row++)
        for (gint column = 0; column < GLYPH_WIDTH; column++)
          if (glyph[row] & (0x10 >> column))
            canvas_fill (canvas, x + column * scale, y + row * scale, x + (column + 1) * scale,
                         y + (row + 1) * scale, colour, 256);
    }
}

/* A fixed, well-spread colour per id: hues step by the golden ratio, so neighbouring ids (the
 * usual case: labels 0, 1, 2) never look alike. */
static PaintColour
id_colour (const Canvas *canvas, guint id)
{
  const gdouble hue = fmod (0.1 + id * 0.618033988749895, 1.0) * 6.0;
  const gdouble saturation = 0.8, value = 0.95;
  const gint sector = (gint) hue;
  const gdouble fraction = hue - sector;
  /* The three levels of the usual HSV-to-RGB construction. */
  const gdouble lowest = value * (1 - saturation), falling = value * (1 - saturation * fraction),
                rising = value * (1 - saturation * (1 - fraction));
  gdouble red, green, blue;
  switch (sector)
    {
    case 0:
      red = value, green = rising, blue = lowest;
      break;
    case 1:
      red = falling, green = value, blue = lowest;
      break;
    case 2:
      red = lowest, green = value, blue = rising;
      break;
    case 3:
      red = lowest, green = falling, blue = value;
      break;
    case 4:
      red = rising, green = lowest, blue = value;
      break;
    default:
      red = value, green = lowest, blue = falling;
      break;
    }
  return canvas_colour (canvas, (guint8) lround (red * 255), (guint8) lround (green * 255),
                        (guint8) lround (blue * 255));
}

/* ---- what is drawn ---- */

/* How each segment of the instance (or class) map is painted. */
typedef struct
{
  gboolean ready;     /* the entry is filled in (ids without a segment table: on first use) */
  gboolean drawn;     /* FALSE: below min-area, or no entry in the segment table */
  gboolean is_thing;  /* filled with alpha and outlined; stuff: stuff-alpha, no outline */
  PaintColour colour; /* its label's */
} SegmentPaint;

/* Whether a segment covers fewer than min_area frame pixels (its area counts mask pixels). */
static gboolean
segment_too_small (const GstUmgClipSegment *segment, gdouble frame_per_mask, guint min_area)
{
  return segment->area * frame_per_mask < min_area;
}

/* The paint of the ids of the map, *n_paints of them. Panoptic with a segment table: the table
 * fills them, sized by its largest id; ids it lacks are not drawn. Otherwise (semantic, or no
 * table) one entry per possible id, filled on first use as a thing in the colour of its id. */
static SegmentPaint *
segment_paints (const Canvas *canvas, const GstUmgClipSegmentationMeta *meta, gboolean panoptic,
                guint n_ids, gdouble frame_per_mask, guint min_area, guint *n_paints)
{
  SegmentPaint *paints;
  guint largest = 0;

  if (!panoptic || meta->segments == NULL)
    {
      *n_paints = n_ids;
      return g_new0 (SegmentPaint, n_ids);
    }
  for (guint i = 0; i < meta->segments->len; i++)
    largest = MAX (largest, g_array_index (meta->segments, GstUmgClipSegment, i).id);
  *n_paints = MIN (largest + 1, n_ids);
  paints = g_new0 (SegmentPaint, *n_paints);
  for (guint id = 0; id < *n_paints; id++)
    paints[id].ready = TRUE;
  for (guint i = 0; i < meta->segments->len; i++)
    {
      const GstUmgClipSegment *segment = &g_array_index (meta->segments, GstUmgClipSegment, i);
      if (segment->id >= *n_paints)
        continue;
      paints[segment->id].drawn = !segment_too_small (segment, frame_per_mask, min_area);
      paints[segment->id].is_thing = segment->is_thing;
      paints[segment->id].colour = id_colour (canvas, segment->label_id);
    }
  return paints;
}

/* Things (the instance map in panoptic mode) are filled lightly with their label's colour and
 * outlined opaquely where the map changes, so that two touching things of one label stay two;
 * stuff is tinted with stuff_alpha. In semantic mode every label is filled with alpha. */
static void
paint_segmentation (const Canvas *canvas, const GstUmgClipSegmentationMeta *meta, guint alpha,
                    guint stuff_alpha, gboolean outline, gint thickness, gdouble frame_per_mask,
                    guint min_area)
{
  const gboolean panoptic = meta->instance_map != NULL;
  GstBuffer *map_buffer = panoptic ? meta->instance_map : meta->class_map;
  const guint bytes_per_pixel = (panoptic || meta->format == GST_VIDEO_FORMAT_GRAY16_LE) ? 2 : 1;
  const guint none
      = panoptic ? 0
                 : (bytes_per_pixel == 1 ? GST_UMGCLIP_CLASS_NONE_8 : GST_UMGCLIP_CLASS_NONE_16);
  const guint n_ids = bytes_per_pixel == 1 ? 256 : 65536;
  /* the outline lies on both sides of a boundary: half its width each */
  const gint reach = MAX (1, thickness / 2);
  g_autofree guint *mask_column = NULL;
  g_autofree guint *mask_row = NULL;
  g_autofree SegmentPaint *paints = NULL;
  guint n_paints;
  GstMapInfo map;

  if (map_buffer == NULL || meta->mask_width == 0 || meta->mask_height == 0)
    return;
  if (!gst_buffer_map (map_buffer, &map, GST_MAP_READ))
    return;
  if (map.size < (gsize) meta->mask_width * meta->mask_height * bytes_per_pixel)
    {
      GST_WARNING ("%s map of %" G_GSIZE_FORMAT " bytes is too small for %u×%u: not drawn",
                   panoptic ? "instance" : "class", map.size, meta->mask_width, meta->mask_height);
      gst_buffer_unmap (map_buffer, &map);
      return;
    }

  paints = segment_paints (canvas, meta, panoptic, n_ids, frame_per_mask, min_area, &n_paints);
  /* The maps cover the whole frame whatever its current size, as in umgclipmeta.h. */
  mask_column = g_new (guint, canvas->width);
  mask_row = g_new (guint, canvas->height);
  for (gint x = 0; x < canvas->width; x++)
    mask_column[x] = (guint) ((guint64) x * meta->mask_width / canvas->width);
  for (gint y = 0; y < canvas->height; y++)
    mask_row[y] = (guint) ((guint64) y * meta->mask_height / canvas->height);

#define MAP_ID(x, y)                                                                               \
  (bytes_per_pixel == 1                                                                            \
       ? map.data[(gsize) mask_row[y] * meta->mask_width + mask_column[x]]                         \
       : GST_READ_UINT16_LE (map.data                                                              \
                             + 2 * ((gsize) mask_row[y] * meta->mask_width + mask_column[x])))
  for (gint y = 0; y < canvas->height; y++)
    for (gint x = 0; x < canvas->width; x++)
      {
        const guint id = MAP_ID (x, y);
        SegmentPaint *paint;
        gboolean edge = FALSE;
        if (id == none || id >= n_paints)
          continue;
        paint = &paints[id];
        if (!paint->ready)
          *paint = (SegmentPaint){ TRUE, TRUE, TRUE, id_colour (canvas, id) };
        if (!paint->drawn)
          continue;
        if (!paint->is_thing)
          {
            if (stuff_alpha > 0)
              canvas_blend (canvas, x, y, &paint->colour, stuff_alpha);
            continue;
          }
        if (outline && panoptic)
          edge = MAP_ID (MAX (x - reach, 0), y) != id
                 || MAP_ID (MIN (x + reach, canvas->width - 1), y) != id
                 || MAP_ID (x, MAX (y - reach, 0)) != id
                 || MAP_ID (x, MIN (y + reach, canvas->height - 1)) != id;
        if (edge)
          canvas_blend (canvas, x, y, &paint->colour, 256);
        else if (alpha > 0)
          canvas_blend (canvas, x, y, &paint->colour, alpha);
      }
#undef MAP_ID
  gst_buffer_unmap (map_buffer, &map);
}

/* Caption and colour id of a region: its best umgclip tag, else what a detector put in the
 * "detection" param, else its ROI type. */
static gchar *
roi_caption (GstVideoRegionOfInterestMeta *roi, guint *colour_id)
{
  const gchar *sources[] = { "umgclip", "detection" };
  for (guint i = 0; i < G_N_ELEMENTS (sources); i++)
    {
      GstStructure *params = gst_video_region_of_interest_meta_get_param (roi, sources[i]);
      const gchar *label = params != NULL ? gst_structure_get_string (params, "label") : NULL;
      gdouble label_id, confidence;
      if (label == NULL)
        continue;
      *colour_id = gst_umgclip_structure_get_number (params, "label_id", &label_id)
                       ? (guint) label_id
                       : (guint) roi->id;
      if (gst_umgclip_structure_get_number (params, "confidence", &confidence))
        return g_strdup_printf ("%s %.2f", label, confidence);
      return g_strdup (label);
    }
  *colour_id = (guint) roi->id;
  return g_strdup (roi->roi_type != 0 ? g_quark_to_string (roi->roi_type) : "");
}

/* The panoptic segment an ROI of umgclipseg stands for (its "umgclip-segment" param), or NULL. */
static const GstUmgClipSegment *
roi_segment (GstVideoRegionOfInterestMeta *roi, const GstUmgClipSegmentationMeta *meta)
{
  guint id;
  if (meta == NULL || meta->segments == NULL || !gst_umgclip_roi_get_segment (roi, &id))
    return NULL;
  for (guint i = 0; i < meta->segments->len; i++)
    if (g_array_index (meta->segments, GstUmgClipSegment, i).id == id)
      return &g_array_index (meta->segments, GstUmgClipSegment, i);
  return NULL;
}

/* A caption to place: the box it names, and its text. */
typedef struct
{
  gint x, y, w, h;
  gchar *text;
} Caption;

static void
caption_clear (Caption *caption)
{
  g_free (caption->text);
}

typedef struct
{
  gint x0, y0, x1, y1;
} Rect;

static gboolean
rects_overlap (const Rect *a, const Rect *b)
{
  return a->x0 < b->x1 && b->x0 < a->x1 && a->y0 < b->y1 && b->y0 < a->y1;
}

/* Whether the band with its top-left corner at (left, top), moved inside the frame, overlaps
 * no band already placed; if so it is written to out. */
static gboolean
band_is_free (const Canvas *canvas, const GArray *placed, gint left, gint top, gint band_w,
              gint band_h, Rect *out)
{
  Rect r;
  r.x0 = CLAMP (left, 0, MAX (0, canvas->width - band_w));
  r.y0 = CLAMP (top, 0, MAX (0, canvas->height - band_h));
  r.x1 = r.x0 + band_w;
  r.y1 = r.y0 + band_h;
  for (guint j = 0; j < placed->len; j++)
    if (rects_overlap (&r, &g_array_index (placed, Rect, j)))
      return FALSE;
  *out = r;
  return TRUE;
}

/* Where a band of band_w × band_h goes for the box (x, y, w, h): at its left edge above it,
 * just inside its top, just below it, just inside its bottom; then down its left edge, down its
 * right edge, and the four first places at its right edge; the first that overlaps no band
 * already placed. FALSE when every place does: the caption is left out rather than drawn over
 * another. */
static gboolean
place_band (const Canvas *canvas, const Caption *caption, gint band_w, gint band_h,
            const GArray *placed, Rect *out)
{
  const gint x = caption->x, y = caption->y, w = caption->w, h = caption->h;
  const gint step = MAX (1, band_h / 2);
  const gint tops[] = { y - band_h, y, y + h, y + h - band_h };
  const gint lefts[] = { x, x + w - band_w };

  for (guint i = 0; i < G_N_ELEMENTS (tops); i++)
    if (band_is_free (canvas, placed, lefts[0], tops[i], band_w, band_h, out))
      return TRUE;
  for (guint side = 0; side < G_N_ELEMENTS (lefts); side++)
    for (gint top = y + step; top < y + h - band_h; top += step)
      if (band_is_free (canvas, placed, lefts[side], top, band_w, band_h, out))
        return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (tops); i++)
    if (band_is_free (canvas, placed, lefts[1], tops[i], band_w, band_h, out))
      return TRUE;
  return FALSE;
}

static gint
caption_by_area (gconstpointer a, gconstpointer b)
{
  const Caption *first = a, *second = b;
  const gint64 area_a = (gint64) first->w * first->h, area_b = (gint64) second->w * second->h;
  return area_a > area_b ? -1 : area_a < area_b;
}

/* Captions on dark translucent bands, larger boxes first, none over another. */
static void
draw_captions (const Canvas *canvas, GArray *captions, gint scale)
{
  const PaintColour white = canvas_colour (canvas, 255, 255, 255);
  const PaintColour black = canvas_colour (canvas, 0, 0, 0);
  const gint padding = scale;
  const gint band_h = GLYPH_HEIGHT * scale + 2 * padding;
  g_autoptr (GArray) placed = g_array_new (FALSE, FALSE, sizeof (Rect));
  guint left_out = 0;

  g_array_sort (captions, caption_by_area);
  for (guint i = 0; i < captions->len; i++)
    {
      const Caption *caption = &g_array_index (captions, Caption, i);
      const gint band_w = text_width (caption->text, scale) + 2 * padding;
      Rect band;
      if (caption->text[0] == '\0')
        continue;
      if (!place_band (canvas, caption, band_w, band_h, placed, &band))
        {
          left_out++;
          continue;
        }
      g_array_append_val (placed, band);
      canvas_fill (canvas, band.x0, band.y0, band.x1, band.y1, &black, 160);
      canvas_text (canvas, band.x0 + padding, band.y0 + padding, caption->text, scale, &white);
    }
  if (left_out > 0)
    GST_LOG ("%u captions left out: no place that overlaps no other", left_out);
}

static GstFlowReturn
gst_umgclip_overlay_transform_frame_ip (GstVideoFilter *filter, GstVideoFrame *frame)
{
  GstUmgClipOverlay *overlay = GST_UMGCLIP_OVERLAY (filter);
  GstUmgClipSegmentationMeta *segmentation
      = gst_buffer_get_umgclip_segmentation_meta (frame->buffer);
  gboolean draw_masks, draw_boxes, draw_labels, outline;
  guint alpha, stuff_alpha, min_area;
  Canvas canvas;
  gint scale, thickness;
  gpointer state = NULL;
  GstMeta *meta;
  gboolean any_roi = FALSE;
  g_autoptr (GArray) captions = g_array_new (FALSE, FALSE, sizeof (Caption));
  gdouble frame_per_mask = 1;

  g_array_set_clear_func (captions, (GDestroyNotify) caption_clear);
  GST_OBJECT_LOCK (overlay);
  alpha = (guint) lround (overlay->alpha * 256);
  stuff_alpha = (guint) lround (overlay->stuff_alpha * 256);
  outline = overlay->outline;
  min_area = overlay->min_area;
  draw_masks = overlay->draw_masks;
  draw_boxes = overlay->draw_boxes;
  draw_labels = overlay->draw_labels;
  GST_OBJECT_UNLOCK (overlay);

  canvas_init (&canvas, frame);
  /* Readable at 1080p without hiding small frames: one font pixel per 360 frame rows. Even
   * line widths keep 4:2:0 chroma on every box edge. */
  scale = MAX (1, canvas.height / 360);
  thickness = 2 * MAX (1, canvas.height / 480);
  if (segmentation != NULL && segmentation->mask_width > 0 && segmentation->mask_height > 0)
    frame_per_mask = (gdouble) canvas.width * canvas.height
                     / ((gdouble) segmentation->mask_width * segmentation->mask_height);

  if (draw_masks && segmentation != NULL)
    paint_segmentation (&canvas, segmentation, alpha, stuff_alpha, outline, thickness,
                        frame_per_mask, min_area);

  /* A region drawn as its mask gets no box: each thing is drawn once. Regions smaller than
   * min-area (or whose segment is) are not drawn at all. */
  while ((meta = gst_buffer_iterate_meta_filtered (frame->buffer, &state,
                                                   GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
         != NULL)
    {
      GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
      const GstUmgClipSegment *segment = roi_segment (roi, segmentation);
      guint colour_id;
      Caption caption = { (gint) roi->x, (gint) roi->y, (gint) roi->w, (gint) roi->h, NULL };
      any_roi = TRUE;
      if ((guint64) roi->w * roi->h < min_area
          || (segment != NULL && segment_too_small (segment, frame_per_mask, min_area)))
        continue;
      caption.text = roi_caption (roi, &colour_id);
      if (draw_boxes && !(segment != NULL && draw_masks))
        {
          const PaintColour colour = id_colour (&canvas, colour_id);
          canvas_outline (&canvas, caption.x, caption.y, caption.w, caption.h, thickness, &colour);
        }
      if (draw_labels)
        g_array_append_val (captions, caption);
      else
        caption_clear (&caption);
    }

  /* Panoptic things usually come back as ROIs (umgcliptag); caption segments only when there
   * are none, so a region is not labelled twice. */
  if (draw_labels && !any_roi && segmentation != NULL && segmentation->segments != NULL
      && segmentation->frame_width > 0 && segmentation->frame_height > 0)
    {
      const guint n_labels
          = segmentation->labels != NULL ? g_strv_length (segmentation->labels) : 0;
      for (guint i = 0; i < segmentation->segments->len; i++)
        {
          const GstUmgClipSegment *segment
              = &g_array_index (segmentation->segments, GstUmgClipSegment, i);
          Caption caption;
          if (segment->label_id >= n_labels
              || segment_too_small (segment, frame_per_mask, min_area))
            continue;
          caption = (Caption){
            (gint) ((gint64) segment->x * canvas.width / segmentation->frame_width),
            (gint) ((gint64) segment->y * canvas.height / segmentation->frame_height),
            (gint) ((gint64) segment->w * canvas.width / segmentation->frame_width),
            (gint) ((gint64) segment->h * canvas.height / segmentation->frame_height),
            g_strdup_printf ("%s %.2f", segmentation->labels[segment->label_id], segment->score),
          };
          g_array_append_val (captions, caption);
        }
    }
  draw_captions (&canvas, captions, scale);

  return GST_FLOW_OK;
}

static void
gst_umgclip_overlay_set_property (GObject *object, guint prop_id, const GValue *value,
                                  GParamSpec *pspec)
{
  GstUmgClipOverlay *overlay = GST_UMGCLIP_OVERLAY (object);
  GST_OBJECT_LOCK (overlay);
  switch (prop_id)
    {
    case PROP_ALPHA:
      overlay->alpha = g_value_get_double (value);
      break;
    case PROP_STUFF_ALPHA:
      overlay->stuff_alpha = g_value_get_double (value);
      break;
    case PROP_OUTLINE:
      overlay->outline = g_value_get_boolean (value);
      break;
    case PROP_MIN_AREA:
      overlay->min_area = g_value_get_uint (value);
      break;
    case PROP_DRAW_MASKS:
      overlay->draw_masks = g_value_get_boolean (value);
      break;
    case PROP_DRAW_BOXES:
      overlay->draw_boxes = g_value_get_boolean (value);
      break;
    case PROP_DRAW_LABELS:
      overlay->draw_labels = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (overlay);
}

static void
gst_umgclip_overlay_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstUmgClipOverlay *overlay = GST_UMGCLIP_OVERLAY (object);
  GST_OBJECT_LOCK (overlay);
  switch (prop_id)
    {
    case PROP_ALPHA:
      g_value_set_double (value, overlay->alpha);
      break;
    case PROP_STUFF_ALPHA:
      g_value_set_double (value, overlay->stuff_alpha);
      break;
    case PROP_OUTLINE:
      g_value_set_boolean (value, overlay->outline);
      break;
    case PROP_MIN_AREA:
      g_value_set_uint (value, overlay->min_area);
      break;
    case PROP_DRAW_MASKS:
      g_value_set_boolean (value, overlay->draw_masks);
      break;
    case PROP_DRAW_BOXES:
      g_value_set_boolean (value, overlay->draw_boxes);
      break;
    case PROP_DRAW_LABELS:
      g_value_set_boolean (value, overlay->draw_labels);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
    }
  GST_OBJECT_UNLOCK (overlay);
}

static void
gst_umgclip_overlay_init (GstUmgClipOverlay *overlay)
{
  overlay->alpha = DEFAULT_ALPHA;
  overlay->stuff_alpha = DEFAULT_STUFF_ALPHA;
  overlay->outline = DEFAULT_OUTLINE;
  overlay->min_area = DEFAULT_MIN_AREA;
  overlay->draw_masks = DEFAULT_DRAW_MASKS;
  overlay->draw_boxes = DEFAULT_DRAW_BOXES;
  overlay->draw_labels = DEFAULT_DRAW_LABELS;
}

/* GstVideoFilter's own message for a buffer it cannot map is "code not implemented": say what is
 * wrong instead (once; the others go to the debug log), and pass the buffer on undrawn. */
static GstFlowReturn
gst_umgclip_overlay_transform_ip (GstBaseTransform *trans, GstBuffer *buffer)
{
  GstUmgClipOverlay *overlay = GST_UMGCLIP_OVERLAY (trans);
  GstVideoFilter *filter = GST_VIDEO_FILTER (trans);
  GstVideoFrame frame;
  GstFlowReturn ret;

  if (!filter->negotiated)
    {
      GST_ELEMENT_ERROR (trans, CORE, NEGOTIATION, (NULL), ("unknown format"));
      return GST_FLOW_NOT_NEGOTIATED;
    }
  if (!gst_video_frame_map (&frame, &filter->in_info, buffer,
                            gst_base_transform_is_passthrough (trans) ? GST_MAP_READ
                                                                      : GST_MAP_READWRITE))
    {
      if (!overlay->warned_unmappable)
        GST_ELEMENT_WARNING (trans, STREAM, FORMAT,
                             ("Passed a buffer of %" G_GSIZE_FORMAT " bytes on undrawn: it is no "
                              "%dx%d %s frame (the caps)",
                              gst_buffer_get_size (buffer), GST_VIDEO_INFO_WIDTH (&filter->in_info),
                              GST_VIDEO_INFO_HEIGHT (&filter->in_info),
                              GST_VIDEO_INFO_NAME (&filter->in_info)),
                             (NULL));
      else
        GST_DEBUG_OBJECT (overlay, "passed an unmappable buffer on undrawn");
      overlay->warned_unmappable = TRUE;
      return GST_FLOW_OK;
    }
  ret = gst_umgclip_overlay_transform_frame_ip (filter, &frame);
  gst_video_frame_unmap (&frame);
  return ret;
}

static void
gst_umgclip_overlay_class_init (GstUmgClipOverlayClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVideoFilterClass *video_filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags flags = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING;

  gobject_class->set_property = gst_umgclip_overlay_set_property;
  gobject_class->get_property = gst_umgclip_overlay_get_property;

  g_object_class_install_property (
      gobject_class, PROP_ALPHA,
      g_param_spec_double ("alpha", "Fill opacity",
                           "Opacity of the fill of each thing (panoptic) or label (semantic) in "
                           "its label's colour: 0 leaves the video as it is, 1 replaces it",
                           0.0, 1.0, DEFAULT_ALPHA, flags));
  g_object_class_install_property (
      gobject_class, PROP_STUFF_ALPHA,
      g_param_spec_double ("stuff-alpha", "Stuff opacity",
                           "Opacity of the tint of stuff segments (sky, road: umgclipseg's "
                           "stuff-labels) in panoptic mode; 0 leaves stuff untinted",
                           0.0, 1.0, DEFAULT_STUFF_ALPHA, flags));
  g_object_class_install_property (
      gobject_class, PROP_OUTLINE,
      g_param_spec_boolean ("outline", "Outline",
                            "Draw the outline of every panoptic thing, opaque in its label's "
                            "colour, so that touching things of one label stay apart",
                            DEFAULT_OUTLINE, flags));
  g_object_class_install_property (
      gobject_class, PROP_MIN_AREA,
      g_param_spec_uint ("min-area", "Minimum area",
                         "Segments and regions smaller than this many frame pixels are not "
                         "drawn (neither mask, box nor caption)",
                         0, G_MAXUINT, DEFAULT_MIN_AREA, flags));
  g_object_class_install_property (
      gobject_class, PROP_DRAW_MASKS,
      g_param_spec_boolean ("draw-masks", "Draw masks",
                            "Colour the pixels of each panoptic segment (or, in semantic mode, "
                            "of each label) from umgclipseg's segmentation metadata",
                            DEFAULT_DRAW_MASKS, flags));
  g_object_class_install_property (
      gobject_class, PROP_DRAW_BOXES,
      g_param_spec_boolean ("draw-boxes", "Draw boxes",
                            "Outline every region of interest (GstVideoRegionOfInterestMeta) "
                            "in the colour of its best tag; a region of umgclipseg whose mask "
                            "is drawn gets no box",
                            DEFAULT_DRAW_BOXES, flags));
  g_object_class_install_property (
      gobject_class, PROP_DRAW_LABELS,
      g_param_spec_boolean ("draw-labels", "Draw labels",
                            "Write the best tag and its confidence by every region (or, "
                            "without regions, by every segment), larger regions first, no "
                            "caption over another: one that finds no free place is left out",
                            DEFAULT_DRAW_LABELS, flags));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "UMG-CLIP overlay", "Filter/Effect/Video",
      "Draws umgclip results onto the video: segmentation masks as translucent colours, "
      "region boxes, and the best tag of each region with its confidence",
      "gst-umgclip authors");

  video_filter_class->transform_frame_ip = gst_umgclip_overlay_transform_frame_ip;
  GST_BASE_TRANSFORM_CLASS (klass)->transform_ip = gst_umgclip_overlay_transform_ip;
}
