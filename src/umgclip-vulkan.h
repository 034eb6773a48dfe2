/* libumgclip on a Vulkan device that someone else created: adopt an application's (GStreamer's)
 * instance, device and queue, so that the model and the video share one VkDevice, and hand the
 * runtime frames that already lie in that device's memory, copied on the device, never through
 * the host. */
#pragma once

#include "umgclip.h"

#include <vulkan/vulkan.h>

G_BEGIN_DECLS

typedef struct _UmgClipVulkanDevice UmgClipVulkanDevice;

struct _UmgClipVulkanDevice
{
  VkInstance instance; /* Vulkan 1.1 or later */
  VkPhysicalDevice physical_device;
  VkDevice device;
  VkQueue queue;        /* with compute: every submission of the runtime goes here, so it is
                         * ordered after the owner's work on the same queue */
  guint32 queue_family; /* of queue */
  /* Called around each vkQueueSubmit on queue, when the owner serialises its own submissions
   * (GStreamer: gst_vulkan_queue_submit_lock / unlock); NULL when it does not. */
  void (*lock_queue) (gpointer user_data);
  void (*unlock_queue) (gpointer user_data);
  gpointer user_data;
  /* Whether the device was created with storageBuffer16BitAccess enabled. The runtime only uses
   * what was enabled: without it, F16 weights are widened to F32 (its 32-bit paths). */
  gboolean storage_buffer_16bit_access;
};

/* A context whose model runs on device. The device, instance and queue stay the caller's and
 * must outlive the context. */
UmgClipContext *umgclip_context_new_for_vulkan_device (const gchar *model_dir,
                                                       const UmgClipVulkanDevice *device,
                                                       GError **error);

/* The VkDevice a context runs on, VK_NULL_HANDLE on the CPU backend. */
VkDevice umgclip_context_get_vk_device (UmgClipContext *ctx);

/* Vulkan devices the runtime itself created in this process (adopted ones not counted). */
guint umgclip_vulkan_devices_created (void);

/* One plane of a frame in device memory: a buffer range or an image. */
typedef struct
{
  VkBuffer buffer; /* a buffer plane: rows of the frame's stride from offset, or */
  VkDeviceSize offset;
  VkImage image;        /* an image plane (buffer VK_NULL_HANDLE): texels row by row, packed */
  VkImageLayout layout; /* the image's current layout */
  /* How the plane was last written, for the barrier before the copy reads it: 0 stages for
   * memory only the host wrote. */
  VkPipelineStageFlags stages;
  VkAccessFlags access;
} UmgClipVulkanPlane;

/* Copies a frame on the device into memory of the runtime, ready to be encoded as
 * UmgClipFrame.device: submitted on the context's queue, not waited for (later passes on the
 * same queue follow it). layout gives format, size, strides and colour; planes[i] hold plane i,
 * an image plane in texels of the plane's bytes per pixel, so its rows are packed: its stride
 * must be width × bytes per pixel. Afterwards images are in VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
 * last read by VK_PIPELINE_STAGE_TRANSFER_BIT with VK_ACCESS_TRANSFER_READ_BIT, which the
 * caller records for the next user. The sources may be reused once the next pass that reads the
 * frame has finished, or once the frame is freed. */
UmgClipDeviceFrame *umgclip_device_frame_new (UmgClipContext *ctx, const UmgClipFrame *layout,
                                              const UmgClipVulkanPlane *planes, guint n_planes,
                                              GError **error);
/* Waits until the frame's copy has run: its sources may then be reused at once. */
gboolean umgclip_device_frame_wait (UmgClipDeviceFrame *frame, GError **error);
/* Waits for the frame's copy if it is still running, then frees it. */
void umgclip_device_frame_free (UmgClipDeviceFrame *frame);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgClipDeviceFrame, umgclip_device_frame_free)

G_END_DECLS
