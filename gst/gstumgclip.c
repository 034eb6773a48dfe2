/* The umgclip plugin: open-vocabulary video analytics with CLIP-family models. Registers the
 * elements and makes the metadata types known. */

#include <gst/gst.h>

#include "gstumgclipalert.h"
#include "gstumgclipenc.h"
#include "gstumgclipindex.h"
#include "gstumgcliptag.h"
#include "gstumgclipseg.h"
#include "gstumgclipoverlay.h"
#include "gstumgclipjson.h"
#include "umgclipmeta.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ok = FALSE;
  /* Registering the metas here makes the custom meta readable by bindings as soon as the
   * plugin is loaded. */
  gst_umgclip_embedding_meta_get_info ();
  gst_umgclip_segmentation_meta_get_info ();
  ok |= GST_ELEMENT_REGISTER (umgclipenc, plugin);
  ok |= GST_ELEMENT_REGISTER (umgcliptag, plugin);
  ok |= GST_ELEMENT_REGISTER (umgclipseg, plugin);
  ok |= GST_ELEMENT_REGISTER (umgclipoverlay, plugin);
  ok |= GST_ELEMENT_REGISTER (umgclipjson, plugin);
  ok |= GST_ELEMENT_REGISTER (umgclipindex, plugin);
  ok |= GST_ELEMENT_REGISTER (umgclipalert, plugin);
  return ok;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, umgclip,
                   "Open-vocabulary video analytics with CLIP-family models (UMG-CLIP)",
                   plugin_init, PACKAGE_VERSION, "MIT", "gst-umgclip", "Unknown package origin")
