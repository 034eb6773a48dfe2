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

typedef struct
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
void umg_vk_context_free (UmgVkContext *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgVkContext, umg_vk_context_free)

gboolean umg_vk_has_gpu (void);

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
