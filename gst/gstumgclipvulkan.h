/* The Vulkan side of the umgclip elements: the GstVulkanDevice shared with neighbours through
 * GstContext, and frames in Vulkan memory (VulkanBuffer, VulkanImage) read on the host. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

/* Caps-string tail adding the Vulkan memory features for formats; empty when the plugin was
 * built without gstreamer-vulkan-1.0. */
#ifdef HAVE_GST_VULKAN
#define GST_UMGCLIP_VULKAN_CAPS(formats)                                                           \
  ";" GST_VIDEO_CAPS_MAKE_WITH_FEATURES (                                                          \
      "memory:VulkanBuffer", formats) ";" GST_VIDEO_CAPS_MAKE_WITH_FEATURES ("memory:VulkanImage", \
                                                                             formats)
#else
#define GST_UMGCLIP_VULKAN_CAPS(formats) ""
#endif

/* Per-element state: the device found through GstContext and what reading its frames needs. */
typedef struct _GstUmgClipVulkan GstUmgClipVulkan;

GstUmgClipVulkan *gst_umgclip_vulkan_new (GstElement *element);
void gst_umgclip_vulkan_free (GstUmgClipVulkan *vulkan);

/* GstElement::set_context: keeps a GstVulkanInstance or GstVulkanDevice handed to us. */
void gst_umgclip_vulkan_set_context (GstUmgClipVulkan *vulkan, GstContext *context);
/* Answers a GST_QUERY_CONTEXT for the Vulkan instance or device we hold; FALSE otherwise. */
gboolean gst_umgclip_vulkan_handle_query (GstUmgClipVulkan *vulkan, GstQuery *query);

/* Asks neighbours (and the application) for their GstVulkanDevice; when none is offered but
 * upstream can only send Vulkan memory, opens one that upstream then takes through the same query
 * (it starts after us). Returns the runtime's index of that physical device
 * (umgclip_vulkan_device_index_for_uuid), or -1 when there is no device or it cannot be matched
 * (the reason is logged). */
gint gst_umgclip_vulkan_find_device (GstUmgClipVulkan *vulkan);
/* Drops the device and everything made on it (at stop). */
void gst_umgclip_vulkan_reset (GstUmgClipVulkan *vulkan);
/* The GstVulkanDevice found (a new reference), or NULL. */
GstObject *gst_umgclip_vulkan_get_device (GstUmgClipVulkan *vulkan);
/* The GType of the device object, for a property. */
GType gst_umgclip_vulkan_device_type (void);

/* Maps buffer read-only into frame like gst_video_frame_map, whatever memory holds it: system
 * memory and host-visible Vulkan buffers are mapped in place; Vulkan images and device-local
 * Vulkan buffers are first copied to host-visible memory on their device. frame->buffer is
 * buffer in every case, so metas are read from (and written to) the buffer itself. */
gboolean gst_umgclip_vulkan_frame_map (GstUmgClipVulkan *vulkan, GstVideoFrame *frame,
                                       const GstVideoInfo *info, GstBuffer *buffer, GError **error);
void gst_umgclip_vulkan_frame_unmap (GstUmgClipVulkan *vulkan, GstVideoFrame *frame);

G_END_DECLS
