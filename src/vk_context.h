/* Vulkan plumbing shared by the Vulkan backend: instance, device, queue, validation messages,
 * buffers, one-shot uploads and the compute pipeline cache. Knows nothing about ops. */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

G_BEGIN_DECLS

typedef struct
{
  VkBuffer buffer;
  VkDeviceMemory memory;
  VkDeviceSize size;
  guint8 *mapped; /* host-visible buffers only, else NULL */
} UmgVkBuffer;

/* A compiled shader as glslangValidator emits it, with what its pipeline layout needs. */
typedef struct
{
  const gchar *name;
  const uint32_t *code;
  gsize code_size;          /* bytes */
  guint n_bindings;         /* storage buffers at set 0, bindings 0 .. n_bindings - 1 */
  guint push_constant_size; /* bytes */
} UmgVkShader;

typedef struct
{
  VkShaderModule module;
  VkDescriptorSetLayout set_layout;
  VkPipelineLayout layout;
  VkPipeline pipeline;
  guint n_bindings;
  guint push_constant_size;
} UmgVkPipeline;

typedef struct _UmgVkContext
{
  VkInstance instance;
  VkDebugUtilsMessengerEXT messenger;
  VkPhysicalDevice physical_device;
  VkPhysicalDeviceProperties properties;
  VkPhysicalDeviceMemoryProperties memory_properties;
  VkDeviceSize max_allocation_size;
  VkDevice device;
  VkQueue queue;
  guint32 queue_family;
  VkCommandPool command_pool;
  VkFence fence;              /* for one-shot submissions */
  gboolean has_16bit_storage; /* storageBuffer16BitAccess enabled */

  /* An adopted device (umgclip-vulkan.h) belongs to its owner: the instance and device are not
   * destroyed here, and every submission on its queue takes the owner's queue lock. */
  gboolean adopted;
  void (*lock_queue) (gpointer user_data);
  void (*unlock_queue) (gpointer user_data);
  gpointer queue_user_data;

  gint refcount;            /* the backend and every device frame made on it */
  GPtrArray *frame_buffers; /* UmgVkBuffer *: device-frame buffers kept for reuse, under lock */

  /* Validation messages arrive on any thread; the first one is kept for the next error. */
  GMutex message_lock;
  guint n_messages;
  gchar *first_message;

  /* Guards the queue, the command pool and the pipeline cache. */
  GRecMutex lock;
  GHashTable *pipelines; /* key string -> UmgVkPipeline */
} UmgVkContext;

/* See umg_backend_vulkan_new() for device selection. With UMGCLIP_VALIDATION=1 in the
 * environment the Khronos validation layer is required and every message is counted. */
UmgVkContext *umg_vk_context_new (gint device_index, gboolean allow_cpu_device, GError **error);
/* A context on a device someone else created (see UmgClipVulkanDevice in umgclip-vulkan.h). */
typedef struct _UmgClipVulkanDevice UmgClipVulkanDevice;
UmgVkContext *umg_vk_context_new_adopted (const UmgClipVulkanDevice *device, GError **error);
UmgVkContext *umg_vk_context_ref (UmgVkContext *ctx);
void umg_vk_context_unref (UmgVkContext *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgVkContext, umg_vk_context_unref)

/* vkQueueSubmit on the context's queue under its lock (and the owner's, for adopted devices). */
gboolean umg_vk_queue_submit (UmgVkContext *ctx, guint n_submits, const VkSubmitInfo *submits,
                              VkFence fence, const gchar *what, GError **error);
/* Devices this process created through umg_vk_context_new (adopted ones are not counted). */
guint umg_vk_devices_created (void);

gboolean umg_vk_has_gpu (void);
/* The index, in the instance's enumeration, of the device umg_vk_context_new (device_index,
 * allow_cpu_device) would open. */
gboolean umg_vk_choose_device_index (gint device_index, gboolean allow_cpu_device, gint *out_index,
                                     GError **error);

/* FALSE with "Vulkan validation: <first message>" when messages arrived since the last call;
 * the count starts again from zero. */
gboolean umg_vk_context_check_messages (UmgVkContext *ctx, GError **error);

/* Device-local storage buffer (transfer source and destination too), or host-visible
 * coherent mapped staging when host_visible. what names the buffer in errors. */
gboolean umg_vk_buffer_init (UmgVkContext *ctx, UmgVkBuffer *buffer, VkDeviceSize size,
                             gboolean host_visible, const gchar *what, GError **error);
void umg_vk_buffer_clear (UmgVkContext *ctx, UmgVkBuffer *buffer);
/* Fills a device buffer with zeros and waits. */
gboolean umg_vk_zero_buffer (UmgVkContext *ctx, UmgVkBuffer *buffer, GError **error);

gboolean umg_vk_check (VkResult result, const gchar *what, GError **error);

/* Records copies from a host-visible staging buffer and submits them whenever it fills. */
typedef struct
{
  UmgVkContext *ctx;
  UmgVkBuffer staging;
  VkCommandBuffer cmd;
  VkDeviceSize used;
  gboolean recording;
} UmgVkUploader;

gboolean umg_vk_uploader_init (UmgVkUploader *uploader, UmgVkContext *ctx,
                               VkDeviceSize staging_size, GError **error);
/* Returns where to write size bytes (size <= staging size) that will land in dst at
 * dst_offset once the uploader is flushed. */
guint8 *umg_vk_uploader_reserve (UmgVkUploader *uploader, VkBuffer dst, VkDeviceSize dst_offset,
                                 VkDeviceSize size, GError **error);
gboolean umg_vk_uploader_flush (UmgVkUploader *uploader, GError **error);
void umg_vk_uploader_clear (UmgVkUploader *uploader);

/* The pipeline of a shader specialised with constants 0 .. n_spec - 1 (all 32-bit), built
 * on first use and cached for the context's lifetime. */
const UmgVkPipeline *umg_vk_get_pipeline (UmgVkContext *ctx, const UmgVkShader *shader,
                                          const guint32 *spec, guint n_spec, GError **error);

G_END_DECLS
