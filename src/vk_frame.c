/* Frames that already lie in Vulkan memory (umgclip-vulkan.h): each plane is copied on the device
 * into a buffer of the runtime, with the layout the vision graph reads, on the context's queue
 * and without waiting. The vision pass that reads the frame later copies it into its staging
 * slices on the same queue, so queue order is the only synchronisation the copy needs. */
#include "vk_frame.h"

#include "context.h"
#include "frame.h"

#include <string.h>

struct _UmgClipDeviceFrame
{
  UmgVkContext *vk; /* a reference: the frame may outlive a context that is rebuilt */
  UmgVkBuffer *buffer;
  VkDeviceSize offsets[3];
  guint n_planes;
  VkCommandBuffer cmd;
  VkFence fence;
  UmgClipFrame layout; /* planes NULL */
};

/* Freed frame buffers kept for the next frames of the same size. */
#define KEPT_BUFFERS 8

static UmgVkBuffer *
take_buffer (UmgVkContext *vk, VkDeviceSize size, GError **error)
{
  UmgVkBuffer *buffer = NULL;

  g_rec_mutex_lock (&vk->lock);
  for (guint i = 0; vk->frame_buffers != NULL && i < vk->frame_buffers->len; i++)
    if (((UmgVkBuffer *) vk->frame_buffers->pdata[i])->size == size)
      {
        buffer = g_ptr_array_steal_index_fast (vk->frame_buffers, i);
        break;
      }
  g_rec_mutex_unlock (&vk->lock);
  if (buffer != NULL)
    return buffer;
  buffer = g_new0 (UmgVkBuffer, 1);
  if (!umg_vk_buffer_init (vk, buffer, size, FALSE, "device frame", error))
    {
      g_free (buffer);
      return NULL;
    }
  return buffer;
}

static void
give_back_buffer (UmgVkContext *vk, UmgVkBuffer *buffer)
{
  g_rec_mutex_lock (&vk->lock);
  if (vk->frame_buffers == NULL)
    vk->frame_buffers = g_ptr_array_new ();
  if (vk->frame_buffers->len < KEPT_BUFFERS)
    {
      g_ptr_array_add (vk->frame_buffers, buffer);
      buffer = NULL;
    }
  g_rec_mutex_unlock (&vk->lock);
  if (buffer != NULL)
    {
      umg_vk_buffer_clear (vk, buffer);
      g_free (buffer);
    }
}

void
umg_vk_frame_buffers_clear (UmgVkContext *vk)
{
  for (guint i = 0; vk->frame_buffers != NULL && i < vk->frame_buffers->len; i++)
    {
      umg_vk_buffer_clear (vk, vk->frame_buffers->pdata[i]);
      g_free (vk->frame_buffers->pdata[i]);
    }
  g_clear_pointer (&vk->frame_buffers, g_ptr_array_unref);
}

/* Texels of plane i of a format: width and height, and bytes per texel. */
static void
plane_texels (gint format, gint width, gint height, guint plane, guint32 *texels_w,
              guint32 *texels_h, guint *texel_bytes)
{
  const gboolean chroma = plane > 0;
  *texels_w = chroma ? (width + 1) / 2 : width;
  *texels_h = chroma ? (height + 1) / 2 : height;
  switch (format)
    {
    case UMGCLIP_FORMAT_RGB:
      *texel_bytes = 3;
      break;
    case UMGCLIP_FORMAT_NV12:
      *texel_bytes = chroma ? 2 : 1;
      break;
    case UMGCLIP_FORMAT_I420:
      *texel_bytes = 1;
      break;
    default:
      *texel_bytes = 4;
      break;
    }
}

static void
record_plane_copy (UmgClipDeviceFrame *frame, guint i, const UmgClipVulkanPlane *plane,
                   const gsize bytes[3])
{
  VkPipelineStageFlags source_stages
      = plane->stages != 0 ? plane->stages : VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT;

  if (plane->buffer == VK_NULL_HANDLE)
    {
      guint32 texels_w, texels_h;
      guint texel_bytes;
      VkImageMemoryBarrier barrier = {
        .sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
        .srcAccessMask = plane->access,
        .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
        .oldLayout = plane->layout,
        .newLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
        .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
        .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
        .image = plane->image,
        .subresourceRange = { VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1 },
      };
      VkBufferImageCopy region = {
        .bufferOffset = frame->offsets[i],
        .imageSubresource = { .aspectMask = VK_IMAGE_ASPECT_COLOR_BIT, .layerCount = 1 },
      };
      plane_texels (frame->layout.format, frame->layout.width, frame->layout.height, i, &texels_w,
                    &texels_h, &texel_bytes);
      region.imageExtent = (VkExtent3D){ texels_w, texels_h, 1 };
      vkCmdPipelineBarrier (frame->cmd, source_stages, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL,
                            0, NULL, 1, &barrier);
      vkCmdCopyImageToBuffer (frame->cmd, plane->image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                              frame->buffer->buffer, 1, &region);
    }
  else
    {
      VkBufferMemoryBarrier barrier = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER,
        .srcAccessMask = plane->access,
        .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
        .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
        .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
        .buffer = plane->buffer,
        .offset = plane->offset,
        .size = bytes[i],
      };
      VkBufferCopy region = { plane->offset, frame->offsets[i], bytes[i] };
      vkCmdPipelineBarrier (frame->cmd, source_stages, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL,
                            1, &barrier, 0, NULL);
      vkCmdCopyBuffer (frame->cmd, plane->buffer, frame->buffer->buffer, 1, &region);
    }
}

UmgClipDeviceFrame *
umgclip_device_frame_new (UmgClipContext *ctx, const UmgClipFrame *layout,
                          const UmgClipVulkanPlane *planes, guint n_planes, GError **error)
{
  UmgVkContext *vk = umg_backend_vulkan_get_context (ctx->backend);
  g_autoptr (UmgClipDeviceFrame) frame = NULL;
  VkCommandBufferAllocateInfo allocate_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
    .commandBufferCount = 1,
  };
  VkCommandBufferBeginInfo begin = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
  };
  VkFenceCreateInfo fence_info = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
  VkMemoryBarrier to_pass = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
    .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
    .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
  };
  VkSubmitInfo submit = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1 };
  const VkDeviceSize alignment = 256;
  VkDeviceSize size = 0;
  gsize bytes[3];
  guint expected;
  gboolean ok;

  if (vk == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "frames in Vulkan memory need a context on the Vulkan backend (%s here)",
                   ctx->backend->description);
      return NULL;
    }
  expected = layout->width > 0 && layout->height > 0 ? umg_frame_plane_bytes (
                 layout->format, layout->width, layout->height, layout->strides, bytes)
                                                     : 0;
  if (expected == 0 || n_planes != expected)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "a %d×%d %s frame with strides %d, %d, %d has %u planes, %u given",
                   layout->width, layout->height,
                   umgclip_pixel_format_name (layout->format)
                       ? umgclip_pixel_format_name (layout->format)
                       : "unknown",
                   layout->strides[0], layout->strides[1], layout->strides[2], expected, n_planes);
      return NULL;
    }
  for (guint i = 0; i < n_planes; i++)
    if (planes[i].buffer == VK_NULL_HANDLE)
      {
        guint32 texels_w, texels_h;
        guint texel_bytes;
        plane_texels (layout->format, layout->width, layout->height, i, &texels_w, &texels_h,
                      &texel_bytes);
        if (planes[i].image == VK_NULL_HANDLE
            || (gsize) layout->strides[i] != (gsize) texels_w * texel_bytes)
          {
            g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                         "plane %u: an image plane needs an image and the packed stride %u "
                         "(stride %d given)",
                         i, texels_w * texel_bytes, layout->strides[i]);
            return NULL;
          }
      }

  frame = g_new0 (UmgClipDeviceFrame, 1);
  frame->vk = umg_vk_context_ref (vk);
  frame->layout = *layout;
  memset (frame->layout.planes, 0, sizeof frame->layout.planes);
  frame->layout.device = NULL;
  frame->n_planes = n_planes;
  for (guint i = 0; i < n_planes; i++)
    {
      frame->offsets[i] = size;
      size = (size + bytes[i] + alignment - 1) / alignment * alignment;
    }
  frame->buffer = take_buffer (vk, size, error);
  if (frame->buffer == NULL)
    return NULL;

  allocate_info.commandPool = vk->command_pool;
  g_rec_mutex_lock (&vk->lock);
  ok = umg_vk_check (vkAllocateCommandBuffers (vk->device, &allocate_info, &frame->cmd),
                     "vkAllocateCommandBuffers", error)
       && umg_vk_check (vkCreateFence (vk->device, &fence_info, NULL, &frame->fence),
                        "vkCreateFence", error)
       && umg_vk_check (vkBeginCommandBuffer (frame->cmd, &begin), "vkBeginCommandBuffer", error);
  if (ok)
    {
      for (guint i = 0; i < n_planes; i++)
        record_plane_copy (frame, i, &planes[i], bytes);
      /* the pass that reads the frame copies it on: written before it is read */
      vkCmdPipelineBarrier (frame->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                            VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &to_pass, 0, NULL, 0, NULL);
      ok = umg_vk_check (vkEndCommandBuffer (frame->cmd), "vkEndCommandBuffer", error);
    }
  g_rec_mutex_unlock (&vk->lock);
  submit.pCommandBuffers = &frame->cmd;
  if (!ok || !umg_vk_queue_submit (vk, 1, &submit, frame->fence, "copying a device frame", error))
    {
      /* nothing was submitted: the fence must not be waited for */
      if (frame->fence != VK_NULL_HANDLE)
        vkDestroyFence (vk->device, frame->fence, NULL);
      frame->fence = VK_NULL_HANDLE;
      return NULL;
    }
  return g_steal_pointer (&frame);
}

gboolean
umgclip_device_frame_wait (UmgClipDeviceFrame *frame, GError **error)
{
  return umg_vk_check (vkWaitForFences (frame->vk->device, 1, &frame->fence, VK_TRUE, UINT64_MAX),
                       "waiting for a device frame's copy", error);
}

void
umgclip_device_frame_free (UmgClipDeviceFrame *frame)
{
  UmgVkContext *vk;

  if (frame == NULL)
    return;
  vk = frame->vk;
  if (frame->fence != VK_NULL_HANDLE)
    {
      vkWaitForFences (vk->device, 1, &frame->fence, VK_TRUE, UINT64_MAX);
      vkDestroyFence (vk->device, frame->fence, NULL);
    }
  if (frame->cmd != VK_NULL_HANDLE)
    {
      g_rec_mutex_lock (&vk->lock);
      vkFreeCommandBuffers (vk->device, vk->command_pool, 1, &frame->cmd);
      g_rec_mutex_unlock (&vk->lock);
    }
  if (frame->buffer != NULL)
    give_back_buffer (vk, frame->buffer);
  umg_vk_context_unref (vk);
  g_free (frame);
}

gboolean
umg_device_frame_matches (const UmgClipDeviceFrame *frame, UmgVkContext *vk,
                          const UmgClipFrame *layout)
{
  return frame->vk->device == vk->device && frame->layout.format == layout->format
         && frame->layout.width == layout->width && frame->layout.height == layout->height
         && memcmp (frame->layout.strides, layout->strides, sizeof layout->strides) == 0;
}

void
umg_device_frame_plane (const UmgClipDeviceFrame *frame, guint plane, UmgDeviceInput *out)
{
  out->buffer = frame->buffer->buffer;
  out->offset = frame->offsets[plane];
}
