/* The Vulkan side of the umgclip elements (see gstumgclipvulkan.h): GstContext sharing of the
 * GstVulkanDevice, that device described for the runtime to adopt, frames on it handed to the
 * runtime as buffers and images, and host copies of frames the model cannot read on its
 * device. */
#include "gstumgclipvulkan.h"

#include "umgclip.h"

#include <string.h>

#ifdef HAVE_GST_VULKAN
#include <gst/vulkan/vulkan.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_umgclip_vulkan_debug);
#define GST_CAT_DEFAULT gst_umgclip_vulkan_debug

#ifdef HAVE_GST_VULKAN

struct _GstUmgClipVulkan
{
  GstElement *element; /* the owner; not referenced */

  /* Set from start(), set_context() (any thread) and read by queries: under lock. */
  GMutex lock;
  GstVulkanInstance *instance;
  GstVulkanDevice *device;

  /* The compute queue the runtime adopts with the device (describe_device); under lock. */
  GstVulkanQueue *compute_queue;

  /* Copies to the host, streaming thread only. The queue is the one upstream submits on when
   * known, so that our copy is ordered after its writes. */
  GstVulkanQueue *queue;
  GstVulkanCommandPool *command_pool;
};

GstUmgClipVulkan *
gst_umgclip_vulkan_new (GstElement *element)
{
  GstUmgClipVulkan *vulkan = g_new0 (GstUmgClipVulkan, 1);

  GST_DEBUG_CATEGORY_INIT (gst_umgclip_vulkan_debug, "umgclipvulkan", 0,
                           "umgclip elements with Vulkan memory and devices");
  gst_vulkan_buffer_memory_init_once ();
  gst_vulkan_image_memory_init_once ();
  vulkan->element = element;
  g_mutex_init (&vulkan->lock);
  return vulkan;
}

void
gst_umgclip_vulkan_reset (GstUmgClipVulkan *vulkan)
{
  gst_clear_object (&vulkan->command_pool);
  gst_clear_object (&vulkan->queue);
  g_mutex_lock (&vulkan->lock);
  gst_clear_object (&vulkan->compute_queue);
  gst_clear_object (&vulkan->device);
  gst_clear_object (&vulkan->instance);
  g_mutex_unlock (&vulkan->lock);
}

void
gst_umgclip_vulkan_free (GstUmgClipVulkan *vulkan)
{
  if (vulkan == NULL)
    return;
  gst_umgclip_vulkan_reset (vulkan);
  g_mutex_clear (&vulkan->lock);
  g_free (vulkan);
}

/* ---- GstContext ---- */

void
gst_umgclip_vulkan_set_context (GstUmgClipVulkan *vulkan, GstContext *context)
{
  const gchar *type = gst_context_get_context_type (context);
  GstVulkanDevice *device = NULL;

  g_mutex_lock (&vulkan->lock);
  gst_vulkan_handle_set_context (vulkan->element, context, NULL, &vulkan->instance);
  /* gst_vulkan_handle_set_context knows instances only; an application may hand us a device */
  if (g_strcmp0 (type, GST_VULKAN_DEVICE_CONTEXT_TYPE_STR) == 0
      && gst_context_get_vulkan_device (context, &device) && device != NULL)
    {
      gst_object_replace ((GstObject **) &vulkan->device, GST_OBJECT (device));
      gst_object_unref (device);
    }
  g_mutex_unlock (&vulkan->lock);
}

gboolean
gst_umgclip_vulkan_handle_query (GstUmgClipVulkan *vulkan, GstQuery *query)
{
  gboolean answered;

  if (GST_QUERY_TYPE (query) != GST_QUERY_CONTEXT)
    return FALSE;
  g_mutex_lock (&vulkan->lock);
  answered
      = gst_vulkan_handle_context_query (vulkan->element, query, NULL, vulkan->instance,
                                         vulkan->device)
        /* the queue the model submits on: neighbours that take its lock serialise with
         * us */
        || gst_vulkan_queue_handle_context_query (vulkan->element, query, vulkan->compute_queue);
  g_mutex_unlock (&vulkan->lock);
  return answered;
}

GstObject *
gst_umgclip_vulkan_get_device (GstUmgClipVulkan *vulkan)
{
  GstObject *device;
  g_mutex_lock (&vulkan->lock);
  device = vulkan->device != NULL ? gst_object_ref (GST_OBJECT (vulkan->device)) : NULL;
  g_mutex_unlock (&vulkan->lock);
  return device;
}

GType
gst_umgclip_vulkan_device_type (void)
{
  return GST_TYPE_VULKAN_DEVICE;
}

/* The runtime's index of device's physical device, matched by deviceUUID: indices of two
 * VkInstances need not agree, the UUID does. */
static gint
runtime_index_of (GstUmgClipVulkan *vulkan, GstVulkanDevice *device)
{
  GstVulkanPhysicalDevice *physical = device->physical_device;
  PFN_vkGetPhysicalDeviceProperties2 get_properties2;
  VkPhysicalDeviceIDProperties id_properties = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES,
  };
  VkPhysicalDeviceProperties2 properties = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
    .pNext = &id_properties,
  };
  g_autoptr (GError) error = NULL;
  gint index = -1;

  /* deviceUUID needs Vulkan 1.1 on both the instance and the device */
  get_properties2 = gst_vulkan_instance_check_version (device->instance, 1, 1, 0)
                            && physical->properties.apiVersion >= VK_API_VERSION_1_1
                        ? gst_vulkan_instance_get_proc_address (device->instance,
                                                                "vkGetPhysicalDeviceProperties2")
                        : NULL;
  if (get_properties2 == NULL)
    {
      GST_WARNING_OBJECT (vulkan->element,
                          "the shared Vulkan device %s has no Vulkan 1.1 instance: cannot "
                          "match it to the runtime's devices",
                          physical->properties.deviceName);
      return -1;
    }
  get_properties2 (physical->device, &properties);
  if (!umgclip_vulkan_device_index_for_uuid (id_properties.deviceUUID, &index, &error))
    {
      GST_WARNING_OBJECT (vulkan->element, "shared Vulkan device %s: %s",
                          physical->properties.deviceName, error->message);
      return -1;
    }
  GST_INFO_OBJECT (vulkan->element, "the shared Vulkan device %s is the runtime's device %d",
                   physical->properties.deviceName, index);
  return index;
}

/* Whether upstream can only send frames in Vulkan memory: then it is a Vulkan element that will
 * want a device. */
static gboolean
upstream_sends_vulkan_memory (GstElement *element)
{
  g_autoptr (GstPad) sink_pad = gst_element_get_static_pad (element, "sink");
  g_autoptr (GstCaps) caps = sink_pad != NULL ? gst_pad_peer_query_caps (sink_pad, NULL) : NULL;

  if (caps == NULL || gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return FALSE;
  for (guint i = 0; i < gst_caps_get_size (caps); i++)
    {
      GstCapsFeatures *features = gst_caps_get_features (caps, i);
      if (!gst_caps_features_contains (features, GST_CAPS_FEATURE_MEMORY_VULKAN_BUFFER)
          && !gst_caps_features_contains (features, GST_CAPS_FEATURE_MEMORY_VULKAN_IMAGE))
        return FALSE;
    }
  return TRUE;
}

/* Elements start from the sink towards the source, so an upstream vulkanupload has no device yet
 * when we start: like GstVulkanVideoFilter we then open one, and upstream takes it through its
 * own context query. */
static GstVulkanDevice *
open_device_for_upstream (GstUmgClipVulkan *vulkan)
{
  g_autoptr (GError) error = NULL;
  GstVulkanDevice *device;

  /* not under our lock: the instance may arrive through set_context() */
  if (!gst_vulkan_ensure_element_data (vulkan->element, NULL, &vulkan->instance))
    {
      GST_WARNING_OBJECT (vulkan->element, "could not open a Vulkan instance");
      return NULL;
    }
  device = gst_vulkan_instance_create_device (vulkan->instance, &error);
  if (device == NULL)
    GST_WARNING_OBJECT (vulkan->element, "could not open a Vulkan device: %s", error->message);
  return device;
}

gint
gst_umgclip_vulkan_find_device (GstUmgClipVulkan *vulkan)
{
  GstVulkanDevice *device = NULL;
  gint index;

  g_mutex_lock (&vulkan->lock);
  if (vulkan->device != NULL)
    device = gst_object_ref (vulkan->device);
  g_mutex_unlock (&vulkan->lock);

  /* Not under our lock: the query may come back to us through set_context(). */
  if (device == NULL && !gst_vulkan_device_run_context_query (vulkan->element, &device))
    {
      if (!upstream_sends_vulkan_memory (vulkan->element))
        {
          GST_DEBUG_OBJECT (vulkan->element, "no Vulkan device offered, none needed");
          return -1;
        }
      device = open_device_for_upstream (vulkan);
      if (device == NULL)
        return -1;
      GST_INFO_OBJECT (vulkan->element, "opened Vulkan device %s to share with upstream",
                       device->physical_device->properties.deviceName);
    }

  g_mutex_lock (&vulkan->lock);
  gst_object_replace ((GstObject **) &vulkan->device, GST_OBJECT (device));
  if (vulkan->instance == NULL)
    vulkan->instance = gst_vulkan_device_get_instance (device);
  g_mutex_unlock (&vulkan->lock);

  index = runtime_index_of (vulkan, device);
  gst_object_unref (device);
  return index;
}

/* ---- host copies of Vulkan frames ---- */

static gboolean
first_transfer_queue (GstVulkanDevice *device, GstVulkanQueue *queue, gpointer user_data)
{
  GstVulkanQueue **found = user_data;
  VkQueueFlags flags = device->physical_device->queue_family_props[queue->family].queueFlags;
  /* graphics and compute queues do transfers even where they do not say so */
  if (flags & (VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT | VK_QUEUE_TRANSFER_BIT))
    {
      *found = gst_object_ref (queue);
      return FALSE;
    }
  return TRUE;
}

/* A command pool on a queue of device, preferring the queue the frame was last used on, then
 * the one upstream offers through GstContext, so that our copy follows its writes in order. */
static GstVulkanCommandPool *
get_command_pool (GstUmgClipVulkan *vulkan, GstVulkanDevice *device, GstVulkanQueue *last_used,
                  GError **error)
{
  GstVulkanQueue *queue = NULL;

  /* the queue the runtime submits on, when it is this device's: one submit lock for both */
  g_mutex_lock (&vulkan->lock);
  if (vulkan->compute_queue != NULL && vulkan->compute_queue->device == device)
    queue = gst_object_ref (vulkan->compute_queue);
  g_mutex_unlock (&vulkan->lock);
  if (queue == NULL && last_used != NULL && last_used->device == device)
    queue = gst_object_ref (last_used);
  if (queue == NULL && vulkan->queue != NULL && vulkan->queue->device == device)
    queue = gst_object_ref (vulkan->queue);
  if (queue == NULL)
    {
      GstVulkanQueue *offered = NULL;
      if (gst_vulkan_queue_run_context_query (vulkan->element, &offered) && offered != NULL
          && offered->device == device)
        queue = gst_object_ref (offered);
      gst_clear_object (&offered);
    }
  if (queue == NULL)
    gst_vulkan_device_foreach_queue (device, first_transfer_queue, &queue);
  if (queue == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "the Vulkan device %s of the frame has no queue for transfers",
                   device->physical_device->properties.deviceName);
      return NULL;
    }

  if (vulkan->queue != queue || vulkan->command_pool == NULL)
    {
      gst_clear_object (&vulkan->command_pool);
      gst_object_replace ((GstObject **) &vulkan->queue, GST_OBJECT (queue));
      vulkan->command_pool = gst_vulkan_queue_create_command_pool (queue, error);
    }
  gst_object_unref (queue);
  return vulkan->command_pool;
}

/* A host-visible Vulkan buffer of size bytes for plane: one per copy, since several frames may
 * be waiting for inference at once. */
static GstVulkanBufferMemory *
new_staging (GstVulkanDevice *device, guint plane, gsize size, GError **error)
{
  GstMemory *memory = gst_vulkan_buffer_memory_alloc (
      device, size, VK_BUFFER_USAGE_TRANSFER_DST_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  if (memory == NULL)
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                 "could not allocate %" G_GSIZE_FORMAT
                 " bytes of host-visible Vulkan memory for plane %u of a frame",
                 size, plane);
  return (GstVulkanBufferMemory *) memory;
}

static gboolean
check_vk (VkResult result, const gchar *what, GError **error)
{
  if (result == VK_SUCCESS)
    return TRUE;
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "%s failed reading a Vulkan frame: %d",
               what, result);
  return FALSE;
}

/* One plane of a host copy: the frame memory it comes from and where it lands. */
typedef struct
{
  GstMemory *source;
  GstVulkanBufferMemory *staging;
  guint32 width, height; /* images: texels to copy */
} PlaneCopy;

/* Records the copies of every plane into one command buffer, submits it and waits: the frame is
 * needed on the host right now. */
static gboolean
copy_planes (GstUmgClipVulkan *vulkan, GstVulkanDevice *device, PlaneCopy *planes, guint n_planes,
             gboolean images, GError **error)
{
  GstVulkanQueue *last_used
      = images ? ((GstVulkanImageMemory *) planes[0].source)->barrier.parent.queue
               : ((GstVulkanBufferMemory *) planes[0].source)->barrier.parent.queue;
  GstVulkanCommandPool *pool = get_command_pool (vulkan, device, last_used, error);
  g_autoptr (GstVulkanCommandBuffer) cmd = NULL;
  g_autoptr (GstVulkanFence) fence = NULL;
  VkCommandBufferBeginInfo begin = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
  };
  VkSubmitInfo submit = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1 };
  VkMemoryBarrier to_host = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
    .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
    .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
  };
  VkResult result;

  if (pool == NULL || (cmd = gst_vulkan_command_pool_create (pool, error)) == NULL)
    return FALSE;
  fence = gst_vulkan_device_create_fence (device, error);
  if (fence == NULL)
    return FALSE;

  gst_vulkan_command_buffer_lock (cmd);
  result = vkBeginCommandBuffer (cmd->cmd, &begin);
  for (guint i = 0; i < n_planes && result == VK_SUCCESS; i++)
    {
      if (images)
        {
          GstVulkanImageMemory *image = (GstVulkanImageMemory *) planes[i].source;
          /* wait for whoever wrote the image last, as its barrier state says */
          VkImageMemoryBarrier barrier = {
            .sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER,
            .srcAccessMask = image->barrier.parent.access_flags,
            .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
            .oldLayout = image->barrier.image_layout,
            .newLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
            .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
            .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
            .image = image->image,
            .subresourceRange = image->barrier.subresource_range,
          };
          VkBufferImageCopy region = {
            .imageSubresource = { .aspectMask = VK_IMAGE_ASPECT_COLOR_BIT, .layerCount = 1 },
            .imageExtent = { planes[i].width, planes[i].height, 1 },
          };
          VkPipelineStageFlags source_stages = image->barrier.parent.pipeline_stages;
          vkCmdPipelineBarrier (
              cmd->cmd, source_stages != 0 ? source_stages : VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT,
              VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL, 0, NULL, 1, &barrier);
          vkCmdCopyImageToBuffer (cmd->cmd, image->image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL,
                                  planes[i].staging->buffer, 1, &region);
          /* Downstream Vulkan elements transition from the state we leave it in. Its queue stays
           * as it was (the memory holds a reference to it): we submit on that queue when set. */
          image->barrier.parent.pipeline_stages = VK_PIPELINE_STAGE_TRANSFER_BIT;
          image->barrier.parent.access_flags = VK_ACCESS_TRANSFER_READ_BIT;
          image->barrier.image_layout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
        }
      else
        {
          GstVulkanBufferMemory *buffer = (GstVulkanBufferMemory *) planes[i].source;
          VkBufferMemoryBarrier barrier = {
            .sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER,
            .srcAccessMask = buffer->barrier.parent.access_flags,
            .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT,
            .srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
            .dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED,
            .buffer = buffer->buffer,
            .offset = 0,
            .size = VK_WHOLE_SIZE,
          };
          /* GstMemory offsets count from the start of the VkBuffer */
          VkBufferCopy region = {
            .srcOffset = planes[i].source->offset,
            .size = planes[i].source->size,
          };
          VkPipelineStageFlags source_stages = buffer->barrier.parent.pipeline_stages;
          vkCmdPipelineBarrier (
              cmd->cmd, source_stages != 0 ? source_stages : VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT,
              VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL, 1, &barrier, 0, NULL);
          vkCmdCopyBuffer (cmd->cmd, buffer->buffer, planes[i].staging->buffer, 1, &region);
        }
    }
  if (result == VK_SUCCESS)
    {
      vkCmdPipelineBarrier (cmd->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0,
                            1, &to_host, 0, NULL, 0, NULL);
      result = vkEndCommandBuffer (cmd->cmd);
    }
  gst_vulkan_command_buffer_unlock (cmd);
  if (!check_vk (result, "recording the copy", error))
    return FALSE;

  submit.pCommandBuffers = &cmd->cmd;
  gst_vulkan_queue_submit_lock (vulkan->queue);
  result = vkQueueSubmit (vulkan->queue->queue, 1, &submit, GST_VULKAN_FENCE_FENCE (fence));
  gst_vulkan_queue_submit_unlock (vulkan->queue);
  if (!check_vk (result, "vkQueueSubmit", error))
    return FALSE;
  return check_vk (
      vkWaitForFences (device->device, 1, &GST_VULKAN_FENCE_FENCE (fence), VK_TRUE, G_MAXUINT64),
      "vkWaitForFences", error);
}

/* Texel width, height and bytes of plane as the image holding it stores them. */
static void
plane_geometry (const GstVideoInfo *info, guint plane, guint32 *width, guint32 *height,
                guint *texel_bytes)
{
  for (guint component = 0; component < GST_VIDEO_INFO_N_COMPONENTS (info); component++)
    if (GST_VIDEO_INFO_COMP_PLANE (info, component) == plane)
      {
        *width = GST_VIDEO_INFO_COMP_WIDTH (info, component);
        *height = GST_VIDEO_INFO_COMP_HEIGHT (info, component);
        /* interleaved chroma (NV12's CbCr): one texel holds every component of the plane */
        *texel_bytes = GST_VIDEO_INFO_COMP_PSTRIDE (info, component);
        return;
      }
}

/* A host buffer with the pixels of a Vulkan buffer in Vulkan memory: one host-visible memory
 * per memory of buffer (images: per plane, rows packed), with a GstVideoMeta giving the layout. */
static GstBuffer *
download (GstUmgClipVulkan *vulkan, const GstVideoInfo *info, GstBuffer *buffer, gboolean images,
          GError **error)
{
  guint n_memories = gst_buffer_n_memory (buffer);
  guint n_planes = GST_VIDEO_INFO_N_PLANES (info);
  GstVulkanDevice *device;
  PlaneCopy planes[GST_VIDEO_MAX_PLANES] = { 0 };
  gsize offsets[GST_VIDEO_MAX_PLANES] = { 0 };
  gint strides[GST_VIDEO_MAX_PLANES] = { 0 };
  GstVideoMeta *source_meta = gst_buffer_get_video_meta (buffer);
  GstBuffer *copy;
  gsize offset = 0;

  if (n_memories > GST_VIDEO_MAX_PLANES || (images && n_memories != n_planes))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "a %s frame in Vulkan %s memory has %u memories; expected %u",
                   GST_VIDEO_INFO_NAME (info), images ? "image" : "buffer", n_memories, n_planes);
      return NULL;
    }
  device = images ? ((GstVulkanImageMemory *) gst_buffer_peek_memory (buffer, 0))->device
                  : ((GstVulkanBufferMemory *) gst_buffer_peek_memory (buffer, 0))->device;

  for (guint i = 0; i < n_memories; i++)
    {
      gsize size;
      planes[i].source = gst_buffer_peek_memory (buffer, i);
      if (images)
        {
          guint texel_bytes = 0;
          plane_geometry (info, i, &planes[i].width, &planes[i].height, &texel_bytes);
          strides[i] = planes[i].width * texel_bytes;
          size = (gsize) strides[i] * planes[i].height;
        }
      else
        size = planes[i].source->size;
      offsets[i] = offset;
      offset += size;
      planes[i].staging = new_staging (device, i, size, error);
      if (planes[i].staging == NULL)
        {
          for (guint j = 0; j < i; j++)
            gst_memory_unref (GST_MEMORY_CAST (planes[j].staging));
          return NULL;
        }
    }
  if (!copy_planes (vulkan, device, planes, n_memories, images, error))
    {
      for (guint i = 0; i < n_memories; i++)
        gst_memory_unref (GST_MEMORY_CAST (planes[i].staging));
      return NULL;
    }

  copy = gst_buffer_new ();
  for (guint i = 0; i < n_memories; i++)
    gst_buffer_append_memory (copy, GST_MEMORY_CAST (planes[i].staging));
  if (images)
    gst_buffer_add_video_meta_full (copy, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT (info),
                                    GST_VIDEO_INFO_WIDTH (info), GST_VIDEO_INFO_HEIGHT (info),
                                    n_planes, offsets, strides);
  else if (source_meta != NULL)
    gst_buffer_add_video_meta_full (copy, source_meta->flags, source_meta->format,
                                    source_meta->width, source_meta->height, source_meta->n_planes,
                                    source_meta->offset, source_meta->stride);
  return copy;
}

/* Whether buffer is in Vulkan buffer memory the host cannot map. */
static gboolean
needs_buffer_copy (GstBuffer *buffer)
{
  for (guint i = 0; i < gst_buffer_n_memory (buffer); i++)
    {
      GstMemory *memory = gst_buffer_peek_memory (buffer, i);
      if (!gst_is_vulkan_buffer_memory (memory))
        return FALSE;
      if (!(((GstVulkanBufferMemory *) memory)->vk_mem->properties
            & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT))
        return TRUE;
    }
  return FALSE;
}

GstBuffer *
gst_umgclip_vulkan_host_buffer (GstUmgClipVulkan *vulkan, const GstVideoInfo *info,
                                GstBuffer *buffer, GError **error)
{
  GstMemory *first = gst_buffer_n_memory (buffer) > 0 ? gst_buffer_peek_memory (buffer, 0) : NULL;
  gboolean images = first != NULL && gst_is_vulkan_image_memory (first);

  if (!images && !needs_buffer_copy (buffer))
    return gst_buffer_ref (buffer);
  return download (vulkan, info, buffer, images, error);
}

/* ---- frames read on the model's device ---- */

static gboolean
on_compute_queue (GstVulkanDevice *device, GstVulkanQueue *queue, gpointer user_data)
{
  GstVulkanQueue **found = user_data;
  if (device->physical_device->queue_family_props[queue->family].queueFlags & VK_QUEUE_COMPUTE_BIT)
    {
      *found = gst_object_ref (queue);
      return FALSE;
    }
  return TRUE;
}

static void
lock_queue (gpointer queue)
{
  gst_vulkan_queue_submit_lock (queue);
}

static void
unlock_queue (gpointer queue)
{
  gst_vulkan_queue_submit_unlock (queue);
}

gboolean
gst_umgclip_vulkan_describe_device (GstUmgClipVulkan *vulkan, UmgClipVulkanDevice *out)
{
  gboolean ok = FALSE;

  GstVulkanQueue *offered = NULL;

  /* a neighbour's queue object, when it has compute: its submit lock is then ours too */
  if (gst_vulkan_queue_run_context_query (vulkan->element, &offered) && offered != NULL)
    {
      g_mutex_lock (&vulkan->lock);
      if (vulkan->compute_queue == NULL && vulkan->device != NULL
          && offered->device == vulkan->device
          && (vulkan->device->physical_device->queue_family_props[offered->family].queueFlags
              & VK_QUEUE_COMPUTE_BIT))
        vulkan->compute_queue = gst_object_ref (offered);
      g_mutex_unlock (&vulkan->lock);
    }
  gst_clear_object (&offered);
  g_mutex_lock (&vulkan->lock);
  if (vulkan->device != NULL && vulkan->compute_queue == NULL)
    gst_vulkan_device_foreach_queue (vulkan->device, on_compute_queue, &vulkan->compute_queue);
  if (vulkan->device != NULL && vulkan->compute_queue != NULL)
    {
      *out = (UmgClipVulkanDevice){
        .instance = vulkan->device->instance->instance,
        .physical_device = vulkan->device->physical_device->device,
        .device = vulkan->device->device,
        .queue = vulkan->compute_queue->queue,
        .queue_family = vulkan->compute_queue->family,
        .lock_queue = lock_queue,
        .unlock_queue = unlock_queue,
        .user_data = vulkan->compute_queue,
        /* GStreamer 1.22 enables no device features: the runtime takes its 32-bit paths */
        .storage_buffer_16bit_access = FALSE,
      };
      ok = TRUE;
    }
  g_mutex_unlock (&vulkan->lock);
  return ok;
}

gboolean
gst_umgclip_vulkan_device_planes (GstUmgClipVulkan *vulkan, GstBuffer *buffer,
                                  const GstVideoInfo *info, VkDevice device, UmgClipFrame *layout,
                                  UmgClipVulkanPlane planes[3], guint *n_planes)
{
  const guint n = MIN (GST_VIDEO_INFO_N_PLANES (info), 3);
  GstVideoMeta *meta = gst_buffer_get_video_meta (buffer);
  GstMemory *first = gst_buffer_n_memory (buffer) > 0 ? gst_buffer_peek_memory (buffer, 0) : NULL;
  gboolean images = first != NULL && gst_is_vulkan_image_memory (first);
  GstVulkanQueue *ours;

  if (device == VK_NULL_HANDLE || first == NULL || !(images || gst_is_vulkan_buffer_memory (first)))
    return FALSE;
  g_mutex_lock (&vulkan->lock);
  ours = vulkan->compute_queue;
  g_mutex_unlock (&vulkan->lock);

  memset (planes, 0, 3 * sizeof *planes);
  for (guint i = 0; i < n; i++)
    {
      guint index = i, length;
      gsize skip = 0;
      GstMemory *memory;
      GstVulkanBarrierMemoryInfo *barrier;
      GstVulkanDevice *owner;

      if (!images
          && !gst_buffer_find_memory (buffer, meta != NULL ? meta->offset[i] : info->offset[i], 1,
                                      &index, &length, &skip))
        return FALSE;
      if (index >= gst_buffer_n_memory (buffer))
        return FALSE;
      memory = gst_buffer_peek_memory (buffer, index);
      if (images != gst_is_vulkan_image_memory (memory)
          || (!images && !gst_is_vulkan_buffer_memory (memory)))
        return FALSE;
      owner = images ? ((GstVulkanImageMemory *) memory)->device
                     : ((GstVulkanBufferMemory *) memory)->device;
      barrier = images ? &((GstVulkanImageMemory *) memory)->barrier.parent
                       : &((GstVulkanBufferMemory *) memory)->barrier.parent;
      /* our copy is ordered after upstream's writes by the queue they share */
      if (owner->device != device)
        {
          GST_LOG_OBJECT (vulkan->element, "plane %u lies on another VkDevice: host copy", i);
          return FALSE;
        }
      if (barrier->queue != NULL && (ours == NULL || barrier->queue->queue != ours->queue))
        {
          GST_LOG_OBJECT (vulkan->element, "plane %u was last used on another queue: host copy", i);
          return FALSE;
        }
      planes[i].stages = barrier->pipeline_stages;
      planes[i].access = barrier->access_flags;
      if (images)
        {
          GstVulkanImageMemory *image = (GstVulkanImageMemory *) memory;
          planes[i].image = image->image;
          planes[i].layout = image->barrier.image_layout;
          /* the copy packs the image's rows */
          layout->strides[i] = GST_VIDEO_INFO_COMP_WIDTH (info, i == 0 ? 0 : i)
                               * GST_VIDEO_INFO_COMP_PSTRIDE (info, i == 0 ? 0 : i);
        }
      else
        {
          planes[i].buffer = ((GstVulkanBufferMemory *) memory)->buffer;
          /* GstMemory offsets count from the start of the VkBuffer */
          planes[i].offset = memory->offset + skip;
          layout->strides[i]
              = meta != NULL ? meta->stride[i] : GST_VIDEO_INFO_PLANE_STRIDE (info, i);
        }
    }
  *n_planes = n;
  GST_LOG_OBJECT (vulkan->element, "%u %s planes read on the model's device", n,
                  images ? "image" : "buffer");
  return TRUE;
}

void
gst_umgclip_vulkan_mark_copied (GstBuffer *buffer)
{
  for (guint i = 0; i < gst_buffer_n_memory (buffer); i++)
    {
      GstMemory *memory = gst_buffer_peek_memory (buffer, i);
      if (gst_is_vulkan_image_memory (memory))
        {
          GstVulkanImageMemory *image = (GstVulkanImageMemory *) memory;
          image->barrier.parent.pipeline_stages = VK_PIPELINE_STAGE_TRANSFER_BIT;
          image->barrier.parent.access_flags = VK_ACCESS_TRANSFER_READ_BIT;
          image->barrier.image_layout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
        }
      else if (gst_is_vulkan_buffer_memory (memory))
        {
          GstVulkanBufferMemory *vk_buffer = (GstVulkanBufferMemory *) memory;
          vk_buffer->barrier.parent.pipeline_stages = VK_PIPELINE_STAGE_TRANSFER_BIT;
          vk_buffer->barrier.parent.access_flags = VK_ACCESS_TRANSFER_READ_BIT;
        }
    }
}

#else /* !HAVE_GST_VULKAN: system memory only */

struct _GstUmgClipVulkan
{
  GstElement *element;
};

GstUmgClipVulkan *
gst_umgclip_vulkan_new (GstElement *element)
{
  GstUmgClipVulkan *vulkan = g_new0 (GstUmgClipVulkan, 1);
  vulkan->element = element;
  return vulkan;
}

void
gst_umgclip_vulkan_free (GstUmgClipVulkan *vulkan)
{
  g_free (vulkan);
}

void
gst_umgclip_vulkan_set_context (GstUmgClipVulkan *vulkan, GstContext *context)
{
}

gboolean
gst_umgclip_vulkan_handle_query (GstUmgClipVulkan *vulkan, GstQuery *query)
{
  return FALSE;
}

gint
gst_umgclip_vulkan_find_device (GstUmgClipVulkan *vulkan)
{
  return -1;
}

void
gst_umgclip_vulkan_reset (GstUmgClipVulkan *vulkan)
{
}

GstObject *
gst_umgclip_vulkan_get_device (GstUmgClipVulkan *vulkan)
{
  return NULL;
}

GType
gst_umgclip_vulkan_device_type (void)
{
  return GST_TYPE_OBJECT;
}

GstBuffer *
gst_umgclip_vulkan_host_buffer (GstUmgClipVulkan *vulkan, const GstVideoInfo *info,
                                GstBuffer *buffer, GError **error)
{
  return gst_buffer_ref (buffer);
}

gboolean
gst_umgclip_vulkan_describe_device (GstUmgClipVulkan *vulkan, UmgClipVulkanDevice *out)
{
  return FALSE;
}

gboolean
gst_umgclip_vulkan_device_planes (GstUmgClipVulkan *vulkan, GstBuffer *buffer,
                                  const GstVideoInfo *info, VkDevice device, UmgClipFrame *layout,
                                  UmgClipVulkanPlane planes[3], guint *n_planes)
{
  return FALSE;
}

void
gst_umgclip_vulkan_mark_copied (GstBuffer *buffer)
{
}

#endif
