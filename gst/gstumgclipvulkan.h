/* The Vulkan side of the umgclip elements: the GstVulkanDevice shared with neighbours through
 * GstContext, and frames in Vulkan memory (VulkanBuffer, VulkanImage) read on the host. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

#include "umgclip-vulkan.h"

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

/* A buffer the host can map with the pixels of buffer: buffer itself (a new reference) in
 * system memory or host-visible Vulkan buffers, else a copy in host-visible memory that the
 * frame's device made (Vulkan images, device-local buffers), waited for: the fallback when the
 * model cannot read the frame on its own device. NULL with error on failure. */
GstBuffer *gst_umgclip_vulkan_host_buffer (GstUmgClipVulkan *vulkan, const GstVideoInfo *info,
                                           GstBuffer *buffer, GError **error);

/* The GstVulkanDevice found, as the runtime adopts it (umgclip-vulkan.h): its instance, device
 * and a compute queue, whose submit lock the runtime takes. FALSE when no device was found or
 * it has no compute queue. */
gboolean gst_umgclip_vulkan_describe_device (GstUmgClipVulkan *vulkan, UmgClipVulkanDevice *out);

/* When buffer lies in Vulkan memory of device (the model's VkDevice) and was last used on the
 * queue the model submits on, its planes for umgclip_device_frame_new: layout gets the strides
 * the copy will have (images: packed rows) and planes the buffers or images. FALSE otherwise:
 * the frame is read through the host. */
gboolean gst_umgclip_vulkan_device_planes (GstUmgClipVulkan *vulkan, GstBuffer *buffer,
                                           const GstVideoInfo *info, VkDevice device,
                                           UmgClipFrame *layout, UmgClipVulkanPlane planes[3],
                                           guint *n_planes);
/* Records in buffer's Vulkan images what umgclip_device_frame_new left them in (transfer
 * source layout, last read by a transfer), so that the next user's barrier starts from it. */
void gst_umgclip_vulkan_mark_copied (GstBuffer *buffer);

G_END_DECLS
