/* Vulkan plumbing for the Vulkan backend: instance and validation messages, device selection,
 * the compute queue, buffers and uploads through staging, and the pipeline cache. */
#include "vk_context.h"
#include "vk_frame.h"
#include "umgclip-vulkan.h"
#include "umgclip.h"

#include <string.h>

#define VALIDATION_LAYER "VK_LAYER_KHRONOS_validation"

gboolean
umg_vk_check (VkResult result, const gchar *what, GError **error)
{
  if (result == VK_SUCCESS)
    return TRUE;
  if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY)
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "%s: out of %s memory", what,
                 result == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "device" : "host");
  else if (result == VK_ERROR_DEVICE_LOST)
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "%s: Vulkan device lost", what);
  else
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "%s failed: VkResult %d", what,
                 (gint) result);
  return FALSE;
}

static VkBool32 VKAPI_CALL
on_debug_message (VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                  VkDebugUtilsMessageTypeFlagsEXT types,
                  const VkDebugUtilsMessengerCallbackDataEXT *data, void *user_data)
{
  UmgVkContext *ctx = user_data;
  /* Loader chatter (general warnings) is shown but does not fail a run; anything the
   * validation layer says, and any error, does. */
  gboolean counts = (types & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT) != 0
                    || (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) != 0;
  const gchar *message = data->pMessage != NULL ? data->pMessage : "(no message)";

  g_printerr ("umgclip: Vulkan %s: %s\n", counts ? "validation" : "message", message);
  if (counts)
    {
      g_mutex_lock (&ctx->message_lock);
      ctx->n_messages++;
      if (ctx->first_message == NULL)
        ctx->first_message = g_strdup (message);
      g_mutex_unlock (&ctx->message_lock);
    }
  return VK_FALSE;
}

gboolean
umg_vk_context_check_messages (UmgVkContext *ctx, GError **error)
{
  g_autofree gchar *first = NULL;
  guint n;

  g_mutex_lock (&ctx->message_lock);
  n = ctx->n_messages;
  first = g_steal_pointer (&ctx->first_message);
  ctx->n_messages = 0;
  g_mutex_unlock (&ctx->message_lock);
  if (n == 0)
    return TRUE;
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "Vulkan validation: %s%s", first,
               n > 1 ? " (and more messages, see stderr)" : "");
  return FALSE;
}

static gboolean
validation_requested (void)
{
  return g_strcmp0 (g_getenv ("UMGCLIP_VALIDATION"), "1") == 0;
}

static gboolean
has_validation_layer (void)
{
  guint32 n_layers = 0;
  g_autofree VkLayerProperties *layers = NULL;

  if (vkEnumerateInstanceLayerProperties (&n_layers, NULL) != VK_SUCCESS)
    return FALSE;
  layers = g_new0 (VkLayerProperties, n_layers);
  if (vkEnumerateInstanceLayerProperties (&n_layers, layers) != VK_SUCCESS)
    return FALSE;
  for (guint32 i = 0; i < n_layers; i++)
    if (strcmp (layers[i].layerName, VALIDATION_LAYER) == 0)
      return TRUE;
  return FALSE;
}

static void
fill_messenger_info (VkDebugUtilsMessengerCreateInfoEXT *info, UmgVkContext *ctx)
{
  *info = (VkDebugUtilsMessengerCreateInfoEXT){
    .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
    .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT
                       | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
    .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT
                   | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT
                   | VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
    .pfnUserCallback = on_debug_message,
    .pUserData = ctx,
  };
}

static gboolean
create_instance (UmgVkContext *ctx, gboolean validation, GError **error)
{
  VkApplicationInfo app = {
    .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
    .pApplicationName = "umgclip",
    .pEngineName = "umgclip",
    .apiVersion = VK_API_VERSION_1_1,
  };
  const char *layers[] = { VALIDATION_LAYER };
  const char *extensions[] = { VK_EXT_DEBUG_UTILS_EXTENSION_NAME };
  VkDebugUtilsMessengerCreateInfoEXT messenger_info;
  VkInstanceCreateInfo info = {
    .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
    .pApplicationInfo = &app,
  };
  guint32 loader_version = VK_API_VERSION_1_0;

  if (vkEnumerateInstanceVersion (&loader_version) != VK_SUCCESS
      || loader_version < VK_API_VERSION_1_1)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "the Vulkan loader supports only version %u.%u; 1.1 is needed",
                   VK_API_VERSION_MAJOR (loader_version), VK_API_VERSION_MINOR (loader_version));
      return FALSE;
    }

  if (validation)
    {
      if (!has_validation_layer ())
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                       "UMGCLIP_VALIDATION=1 but the Vulkan layer %s is not installed "
                       "(Debian: vulkan-validationlayers)",
                       VALIDATION_LAYER);
          return FALSE;
        }
      fill_messenger_info (&messenger_info, ctx);
      info.pNext = &messenger_info;
      info.enabledLayerCount = 1;
      info.ppEnabledLayerNames = layers;
      info.enabledExtensionCount = 1;
      info.ppEnabledExtensionNames = extensions;
    }

  if (!umg_vk_check (vkCreateInstance (&info, NULL, &ctx->instance), "vkCreateInstance", error))
    return FALSE;

  if (validation)
    {
      PFN_vkCreateDebugUtilsMessengerEXT create_messenger
          = (PFN_vkCreateDebugUtilsMessengerEXT) vkGetInstanceProcAddr (
              ctx->instance, "vkCreateDebugUtilsMessengerEXT");
      if (create_messenger == NULL)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                       "UMGCLIP_VALIDATION=1 but %s is not available",
                       VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
          return FALSE;
        }
      if (!umg_vk_check (create_messenger (ctx->instance, &messenger_info, NULL, &ctx->messenger),
                         "vkCreateDebugUtilsMessengerEXT", error))
        return FALSE;
    }
  return TRUE;
}

static gint
find_compute_queue_family (VkPhysicalDevice physical_device)
{
  guint32 n_families = 0;
  g_autofree VkQueueFamilyProperties *families = NULL;

  vkGetPhysicalDeviceQueueFamilyProperties (physical_device, &n_families, NULL);
  families = g_new0 (VkQueueFamilyProperties, n_families);
  vkGetPhysicalDeviceQueueFamilyProperties (physical_device, &n_families, families);
  for (guint32 i = 0; i < n_families; i++)
    if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && families[i].queueCount > 0)
      return (gint) i;
  return -1;
}

static gboolean
device_is_usable (VkPhysicalDevice physical_device)
{
  VkPhysicalDeviceProperties properties;

  vkGetPhysicalDeviceProperties (physical_device, &properties);
  return properties.apiVersion >= VK_API_VERSION_1_1
         && find_compute_queue_family (physical_device) >= 0;
}

static GPtrArray *
enumerate_devices (VkInstance instance, GError **error)
{
  guint32 n_devices = 0;
  GPtrArray *devices;
  VkResult result = vkEnumeratePhysicalDevices (instance, &n_devices, NULL);

  if (result != VK_SUCCESS && result != VK_INCOMPLETE)
    {
      umg_vk_check (result, "vkEnumeratePhysicalDevices", error);
      return NULL;
    }
  devices = g_ptr_array_sized_new (n_devices);
  g_ptr_array_set_size (devices, n_devices);
  result = vkEnumeratePhysicalDevices (instance, &n_devices, (VkPhysicalDevice *) devices->pdata);
  if (result != VK_SUCCESS && result != VK_INCOMPLETE)
    {
      g_ptr_array_unref (devices);
      umg_vk_check (result, "vkEnumeratePhysicalDevices", error);
      return NULL;
    }
  g_ptr_array_set_size (devices, n_devices);
  return devices;
}

static VkPhysicalDevice
select_physical_device (UmgVkContext *ctx, gint device_index, gboolean allow_cpu_device,
                        GError **error)
{
  static const VkPhysicalDeviceType preference[] = {
    VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU,
    VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU,
    VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU,
    VK_PHYSICAL_DEVICE_TYPE_CPU,
  };
  g_autoptr (GPtrArray) devices = enumerate_devices (ctx->instance, error);

  if (devices == NULL)
    return VK_NULL_HANDLE;

  if (device_index >= 0)
    {
      VkPhysicalDevice chosen;
      if ((guint) device_index >= devices->len)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                       "Vulkan device index %d out of range: %u device(s) found", device_index,
                       devices->len);
          return VK_NULL_HANDLE;
        }
      chosen = devices->pdata[device_index];
      if (!device_is_usable (chosen))
        {
          VkPhysicalDeviceProperties properties;
          vkGetPhysicalDeviceProperties (chosen, &properties);
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                       "Vulkan device %d (%s) lacks Vulkan 1.1 or a compute queue", device_index,
                       properties.deviceName);
          return VK_NULL_HANDLE;
        }
      return chosen;
    }

  for (guint p = 0; p < G_N_ELEMENTS (preference); p++)
    {
      if (preference[p] == VK_PHYSICAL_DEVICE_TYPE_CPU && !allow_cpu_device)
        continue;
      for (guint i = 0; i < devices->len; i++)
        {
          VkPhysicalDeviceProperties properties;
          vkGetPhysicalDeviceProperties (devices->pdata[i], &properties);
          if (properties.deviceType == preference[p] && device_is_usable (devices->pdata[i]))
            return devices->pdata[i];
        }
    }

  if (devices->len == 0)
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "no Vulkan device found");
  else
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                 "no usable Vulkan GPU among %u device(s)%s", devices->len,
                 allow_cpu_device ? "" : " (software devices such as lavapipe not allowed)");
  return VK_NULL_HANDLE;
}

static gint devices_created;

guint
umg_vk_devices_created (void)
{
  return (guint) g_atomic_int_get (&devices_created);
}

/* What the runtime needs to know of its physical device, whoever created the device. */
static void
read_device_properties (UmgVkContext *ctx)
{
  VkPhysicalDeviceMaintenance3Properties maintenance3 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
  };
  VkPhysicalDeviceProperties2 properties2 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
    .pNext = &maintenance3,
  };

  vkGetPhysicalDeviceProperties (ctx->physical_device, &ctx->properties);
  vkGetPhysicalDeviceProperties2 (ctx->physical_device, &properties2);
  ctx->max_allocation_size = maintenance3.maxMemoryAllocationSize;
  vkGetPhysicalDeviceMemoryProperties (ctx->physical_device, &ctx->memory_properties);
}

static gboolean
create_queue_objects (UmgVkContext *ctx, GError **error)
{
  VkCommandPoolCreateInfo pool_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
    .queueFamilyIndex = ctx->queue_family,
  };
  VkFenceCreateInfo fence_info = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };

  if (!umg_vk_check (vkCreateCommandPool (ctx->device, &pool_info, NULL, &ctx->command_pool),
                     "vkCreateCommandPool", error))
    return FALSE;
  return umg_vk_check (vkCreateFence (ctx->device, &fence_info, NULL, &ctx->fence), "vkCreateFence",
                       error);
}

static gboolean
create_device (UmgVkContext *ctx, GError **error)
{
  VkPhysicalDevice16BitStorageFeatures storage16 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
  };
  VkPhysicalDeviceFeatures2 features = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
    .pNext = &storage16,
  };
  gfloat priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
    .queueCount = 1,
    .pQueuePriorities = &priority,
  };
  VkDeviceCreateInfo device_info = {
    .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
    .queueCreateInfoCount = 1,
    .pQueueCreateInfos = &queue_info,
  };
  VkPhysicalDevice16BitStorageFeatures enabled16 = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
  };
  VkPhysicalDeviceFeatures2 enabled = {
    .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
    .pNext = &enabled16,
  };
  read_device_properties (ctx);
  vkGetPhysicalDeviceFeatures2 (ctx->physical_device, &features);

  /* UMGCLIP_VK_NO_16BIT_STORAGE=1 takes the path of devices without it (tests) */
  if (g_strcmp0 (g_getenv ("UMGCLIP_VK_NO_16BIT_STORAGE"), "1") == 0)
    storage16.storageBuffer16BitAccess = VK_FALSE;
  ctx->has_16bit_storage = storage16.storageBuffer16BitAccess;
  enabled16.storageBuffer16BitAccess = storage16.storageBuffer16BitAccess;

  ctx->queue_family = (guint32) find_compute_queue_family (ctx->physical_device);
  queue_info.queueFamilyIndex = ctx->queue_family;
  device_info.pNext = &enabled;
  if (!umg_vk_check (vkCreateDevice (ctx->physical_device, &device_info, NULL, &ctx->device),
                     "vkCreateDevice", error))
    return FALSE;
  g_atomic_int_inc (&devices_created);
  vkGetDeviceQueue (ctx->device, ctx->queue_family, 0, &ctx->queue);
  return create_queue_objects (ctx, error);
}

static void
pipeline_free (gpointer data)
{
  /* pipelines are destroyed by umg_vk_context_unref, which still has the device */
  g_free (data);
}

static UmgVkContext *
context_alloc (void)
{
  UmgVkContext *ctx = g_new0 (UmgVkContext, 1);
  ctx->refcount = 1;
  g_mutex_init (&ctx->message_lock);
  g_rec_mutex_init (&ctx->lock);
  ctx->pipelines = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, pipeline_free);
  return ctx;
}

UmgVkContext *
umg_vk_context_new_adopted (const UmgClipVulkanDevice *device, GError **error)
{
  g_autoptr (UmgVkContext) ctx = context_alloc ();
  guint32 n_families = 0;
  g_autofree VkQueueFamilyProperties *families = NULL;

  if (device->instance == VK_NULL_HANDLE || device->physical_device == VK_NULL_HANDLE
      || device->device == VK_NULL_HANDLE || device->queue == VK_NULL_HANDLE)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "an adopted Vulkan device needs its instance, physical device, device and "
                   "queue");
      return NULL;
    }
  ctx->adopted = TRUE;
  ctx->instance = device->instance;
  ctx->physical_device = device->physical_device;
  ctx->device = device->device;
  ctx->queue = device->queue;
  ctx->queue_family = device->queue_family;
  ctx->lock_queue = device->lock_queue;
  ctx->unlock_queue = device->unlock_queue;
  ctx->queue_user_data = device->user_data;
  read_device_properties (ctx);

  if (ctx->properties.apiVersion < VK_API_VERSION_1_1)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "the adopted Vulkan device %s supports Vulkan %u.%u; 1.1 is needed",
                   ctx->properties.deviceName, VK_API_VERSION_MAJOR (ctx->properties.apiVersion),
                   VK_API_VERSION_MINOR (ctx->properties.apiVersion));
      return NULL;
    }
  vkGetPhysicalDeviceQueueFamilyProperties (ctx->physical_device, &n_families, NULL);
  families = g_new0 (VkQueueFamilyProperties, MAX (n_families, 1));
  vkGetPhysicalDeviceQueueFamilyProperties (ctx->physical_device, &n_families, families);
  if (ctx->queue_family >= n_families
      || !(families[ctx->queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "queue family %u of the adopted Vulkan device %s has no compute",
                   ctx->queue_family, ctx->properties.deviceName);
      return NULL;
    }
  /* the runtime can only use features the owner enabled: without 16-bit storage, F16 weights
   * are widened to F32 at upload (the 32-bit paths), never an error */
  ctx->has_16bit_storage = device->storage_buffer_16bit_access
                           && g_strcmp0 (g_getenv ("UMGCLIP_VK_NO_16BIT_STORAGE"), "1") != 0;
  if (!create_queue_objects (ctx, error))
    return NULL;
  return g_steal_pointer (&ctx);
}

UmgVkContext *
umg_vk_context_ref (UmgVkContext *ctx)
{
  g_atomic_int_inc (&ctx->refcount);
  return ctx;
}

gboolean
umg_vk_queue_submit (UmgVkContext *ctx, guint n_submits, const VkSubmitInfo *submits, VkFence fence,
                     const gchar *what, GError **error)
{
  VkResult result;

  g_rec_mutex_lock (&ctx->lock);
  if (ctx->lock_queue != NULL)
    ctx->lock_queue (ctx->queue_user_data);
  result = vkQueueSubmit (ctx->queue, n_submits, submits, fence);
  if (ctx->unlock_queue != NULL)
    ctx->unlock_queue (ctx->queue_user_data);
  g_rec_mutex_unlock (&ctx->lock);
  return umg_vk_check (result, what, error);
}

UmgVkContext *
umg_vk_context_new (gint device_index, gboolean allow_cpu_device, GError **error)
{
  g_autoptr (UmgVkContext) ctx = context_alloc ();

  if (!create_instance (ctx, validation_requested (), error))
    return NULL;
  ctx->physical_device = select_physical_device (ctx, device_index, allow_cpu_device, error);
  if (ctx->physical_device == VK_NULL_HANDLE)
    return NULL;
  if (!create_device (ctx, error))
    return NULL;
  if (!umg_vk_context_check_messages (ctx, error))
    return NULL;
  return g_steal_pointer (&ctx);
}

static void
destroy_pipeline (UmgVkContext *ctx, UmgVkPipeline *pipeline)
{
  vkDestroyPipeline (ctx->device, pipeline->pipeline, NULL);
  vkDestroyPipelineLayout (ctx->device, pipeline->layout, NULL);
  vkDestroyDescriptorSetLayout (ctx->device, pipeline->set_layout, NULL);
  vkDestroyShaderModule (ctx->device, pipeline->module, NULL);
}

void
umg_vk_context_unref (UmgVkContext *ctx)
{
  if (ctx == NULL || !g_atomic_int_dec_and_test (&ctx->refcount))
    return;
  if (ctx->device != VK_NULL_HANDLE)
    {
      GHashTableIter iter;
      gpointer pipeline;

      /* every submission of ours waits for its fence, and device frames wait for theirs
       * before they let go of the context: nothing of ours is in flight on an adopted device,
       * whose other work is none of our business */
      if (!ctx->adopted)
        vkDeviceWaitIdle (ctx->device);
      umg_vk_frame_buffers_clear (ctx);
      g_hash_table_iter_init (&iter, ctx->pipelines);
      while (g_hash_table_iter_next (&iter, NULL, &pipeline))
        destroy_pipeline (ctx, pipeline);
      if (ctx->fence != VK_NULL_HANDLE)
        vkDestroyFence (ctx->device, ctx->fence, NULL);
      if (ctx->command_pool != VK_NULL_HANDLE)
        vkDestroyCommandPool (ctx->device, ctx->command_pool, NULL);
      if (!ctx->adopted)
        vkDestroyDevice (ctx->device, NULL);
    }
  if (ctx->messenger != VK_NULL_HANDLE)
    {
      PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger
          = (PFN_vkDestroyDebugUtilsMessengerEXT) vkGetInstanceProcAddr (
              ctx->instance, "vkDestroyDebugUtilsMessengerEXT");
      if (destroy_messenger != NULL)
        destroy_messenger (ctx->instance, ctx->messenger, NULL);
    }
  if (ctx->instance != VK_NULL_HANDLE && !ctx->adopted)
    vkDestroyInstance (ctx->instance, NULL);
  g_hash_table_unref (ctx->pipelines);
  g_free (ctx->first_message);
  g_mutex_clear (&ctx->message_lock);
  g_rec_mutex_clear (&ctx->lock);
  g_free (ctx);
}

gboolean
umg_vk_has_gpu (void)
{
  static gsize answer = 0; /* 1: no GPU, 2: GPU */

  if (g_once_init_enter (&answer))
    {
      UmgVkContext probe = { 0 };
      gboolean found = FALSE;

      if (create_instance (&probe, FALSE, NULL))
        {
          g_autoptr (GPtrArray) devices = enumerate_devices (probe.instance, NULL);
          for (guint i = 0; devices != NULL && i < devices->len; i++)
            {
              VkPhysicalDeviceProperties properties;
              vkGetPhysicalDeviceProperties (devices->pdata[i], &properties);
              if (properties.deviceType != VK_PHYSICAL_DEVICE_TYPE_CPU
                  && properties.deviceType != VK_PHYSICAL_DEVICE_TYPE_OTHER
                  && device_is_usable (devices->pdata[i]))
                found = TRUE;
            }
        }
      if (probe.instance != VK_NULL_HANDLE)
        vkDestroyInstance (probe.instance, NULL);
      g_once_init_leave (&answer, found ? 2 : 1);
    }
  return answer == 2;
}

gboolean
umg_vk_choose_device_index (gint device_index, gboolean allow_cpu_device, gint *out_index,
                            GError **error)
{
  UmgVkContext probe = { 0 };
  g_autoptr (GPtrArray) devices = NULL;
  VkPhysicalDevice chosen;
  gboolean found = FALSE;

  g_mutex_init (&probe.message_lock);
  if (create_instance (&probe, FALSE, error)
      && (chosen = select_physical_device (&probe, device_index, allow_cpu_device, error))
             != VK_NULL_HANDLE
      && (devices = enumerate_devices (probe.instance, error)) != NULL)
    for (guint i = 0; i < devices->len && !found; i++)
      if (devices->pdata[i] == chosen)
        {
          *out_index = (gint) i;
          found = TRUE;
        }
  if (probe.instance != VK_NULL_HANDLE)
    vkDestroyInstance (probe.instance, NULL);
  g_mutex_clear (&probe.message_lock);
  return found;
}

gboolean
umgclip_vulkan_device_index_for_uuid (const guint8 uuid[16], gint *index, GError **error)
{
  UmgVkContext probe = { 0 };
  g_autoptr (GPtrArray) devices = NULL;
  gboolean found = FALSE;

  /* A plain instance: validation would only add messages nobody collects here. */
  if (!create_instance (&probe, FALSE, error))
    goto out;
  devices = enumerate_devices (probe.instance, error);
  if (devices == NULL)
    goto out;
  /* Same enumeration as umg_vk_context_new, so the index means the same device there. */
  for (guint i = 0; i < devices->len && !found; i++)
    {
      VkPhysicalDeviceIDProperties id_properties = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES,
      };
      VkPhysicalDeviceProperties2 properties = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
        .pNext = &id_properties,
      };
      vkGetPhysicalDeviceProperties2 (devices->pdata[i], &properties);
      if (memcmp (id_properties.deviceUUID, uuid, VK_UUID_SIZE) == 0)
        {
          *index = (gint) i;
          found = TRUE;
        }
    }
  if (!found)
    {
      g_autoptr (GString) hex = g_string_new (NULL);
      for (guint i = 0; i < VK_UUID_SIZE; i++)
        g_string_append_printf (hex, "%02x", uuid[i]);
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "no Vulkan device with UUID %s among %u device(s)", hex->str, devices->len);
    }
out:
  if (probe.instance != VK_NULL_HANDLE)
    vkDestroyInstance (probe.instance, NULL);
  return found;
}

static gint
find_memory_type (UmgVkContext *ctx, guint32 type_bits, VkMemoryPropertyFlags required,
                  VkMemoryPropertyFlags preferred)
{
  const VkPhysicalDeviceMemoryProperties *memory = &ctx->memory_properties;

  for (gint pass = 0; pass < 2; pass++)
    {
      VkMemoryPropertyFlags wanted = pass == 0 ? required | preferred : required;
      for (guint32 i = 0; i < memory->memoryTypeCount; i++)
        if ((type_bits & (1u << i)) && (memory->memoryTypes[i].propertyFlags & wanted) == wanted)
          return (gint) i;
    }
  return -1;
}

gboolean
umg_vk_buffer_init (UmgVkContext *ctx, UmgVkBuffer *buffer, VkDeviceSize size,
                    gboolean host_visible, const gchar *what, GError **error)
{
  VkBufferCreateInfo buffer_info = {
    .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
    /* a zero-sized buffer is invalid; empty graphs still get a valid binding */
    .size = MAX (size, 16),
    .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT
             | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
    .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
  };
  VkMemoryRequirements requirements;
  VkMemoryAllocateInfo allocate_info = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO };
  VkResult result;
  gint type;

  memset (buffer, 0, sizeof *buffer);
  if (ctx->max_allocation_size != 0 && buffer_info.size > ctx->max_allocation_size)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                   "%s needs %" G_GUINT64_FORMAT " bytes, more than the device's largest "
                   "allocation (%" G_GUINT64_FORMAT " bytes)",
                   what, (guint64) buffer_info.size, (guint64) ctx->max_allocation_size);
      return FALSE;
    }
  if (!umg_vk_check (vkCreateBuffer (ctx->device, &buffer_info, NULL, &buffer->buffer), what,
                     error))
    return FALSE;
  vkGetBufferMemoryRequirements (ctx->device, buffer->buffer, &requirements);
  if (host_visible)
    type = find_memory_type (ctx, requirements.memoryTypeBits,
                             VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT
                                 | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                             VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
  else
    type = find_memory_type (ctx, requirements.memoryTypeBits, 0,
                             VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  if (type < 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE, "%s: no suitable Vulkan memory type",
                   what);
      umg_vk_buffer_clear (ctx, buffer);
      return FALSE;
    }
  allocate_info.allocationSize = requirements.size;
  allocate_info.memoryTypeIndex = (guint32) type;
  result = vkAllocateMemory (ctx->device, &allocate_info, NULL, &buffer->memory);
  if (result != VK_SUCCESS)
    {
      if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY)
        g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE,
                     "out of %s memory allocating %" G_GUINT64_FORMAT " bytes for %s",
                     result == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "device" : "host",
                     (guint64) requirements.size, what);
      else
        umg_vk_check (result, what, error);
      umg_vk_buffer_clear (ctx, buffer);
      return FALSE;
    }
  buffer->size = size;
  if (!umg_vk_check (vkBindBufferMemory (ctx->device, buffer->buffer, buffer->memory, 0), what,
                     error))
    {
      umg_vk_buffer_clear (ctx, buffer);
      return FALSE;
    }
  if (host_visible
      && !umg_vk_check (
          vkMapMemory (ctx->device, buffer->memory, 0, VK_WHOLE_SIZE, 0, (void **) &buffer->mapped),
          what, error))
    {
      umg_vk_buffer_clear (ctx, buffer);
      return FALSE;
    }
  return TRUE;
}

void
umg_vk_buffer_clear (UmgVkContext *ctx, UmgVkBuffer *buffer)
{
  if (buffer->buffer != VK_NULL_HANDLE)
    vkDestroyBuffer (ctx->device, buffer->buffer, NULL);
  if (buffer->memory != VK_NULL_HANDLE)
    vkFreeMemory (ctx->device, buffer->memory, NULL); /* unmaps too */
  memset (buffer, 0, sizeof *buffer);
}

gboolean
umg_vk_zero_buffer (UmgVkContext *ctx, UmgVkBuffer *buffer, GError **error)
{
  VkCommandBufferAllocateInfo allocate_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
    .commandPool = ctx->command_pool,
    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
    .commandBufferCount = 1,
  };
  VkCommandBufferBeginInfo begin = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
  };
  VkMemoryBarrier barrier = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
    .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
    .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT
                     | VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
  };
  VkSubmitInfo submit = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1 };
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  gboolean ok;

  g_rec_mutex_lock (&ctx->lock);
  ok = umg_vk_check (vkAllocateCommandBuffers (ctx->device, &allocate_info, &cmd),
                     "vkAllocateCommandBuffers", error)
       && umg_vk_check (vkBeginCommandBuffer (cmd, &begin), "vkBeginCommandBuffer", error);
  if (ok)
    {
      vkCmdFillBuffer (cmd, buffer->buffer, 0, VK_WHOLE_SIZE, 0);
      vkCmdPipelineBarrier (cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                            0, 1, &barrier, 0, NULL, 0, NULL);
      submit.pCommandBuffers = &cmd;
      ok = umg_vk_check (vkEndCommandBuffer (cmd), "vkEndCommandBuffer", error)
           && umg_vk_queue_submit (ctx, 1, &submit, ctx->fence, "vkQueueSubmit", error)
           && umg_vk_check (vkWaitForFences (ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX),
                            "vkWaitForFences", error)
           && umg_vk_check (vkResetFences (ctx->device, 1, &ctx->fence), "vkResetFences", error);
    }
  if (cmd != VK_NULL_HANDLE)
    vkFreeCommandBuffers (ctx->device, ctx->command_pool, 1, &cmd);
  g_rec_mutex_unlock (&ctx->lock);
  return ok;
}

gboolean
umg_vk_uploader_init (UmgVkUploader *uploader, UmgVkContext *ctx, VkDeviceSize staging_size,
                      GError **error)
{
  VkCommandBufferAllocateInfo allocate_info = {
    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
    .commandPool = ctx->command_pool,
    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
    .commandBufferCount = 1,
  };
  gboolean ok;

  memset (uploader, 0, sizeof *uploader);
  uploader->ctx = ctx;
  if (!umg_vk_buffer_init (ctx, &uploader->staging, staging_size, TRUE, "upload staging buffer",
                           error))
    return FALSE;
  g_rec_mutex_lock (&ctx->lock);
  ok = umg_vk_check (vkAllocateCommandBuffers (ctx->device, &allocate_info, &uploader->cmd),
                     "vkAllocateCommandBuffers", error);
  g_rec_mutex_unlock (&ctx->lock);
  return ok;
}

guint8 *
umg_vk_uploader_reserve (UmgVkUploader *uploader, VkBuffer dst, VkDeviceSize dst_offset,
                         VkDeviceSize size, GError **error)
{
  VkBufferCopy region;
  VkDeviceSize start = (uploader->used + 15) & ~(VkDeviceSize) 15;

  if (size > uploader->staging.size)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "an upload of %" G_GUINT64_FORMAT " bytes does not fit the staging buffer of "
                   "%" G_GUINT64_FORMAT,
                   (guint64) size, (guint64) uploader->staging.size);
      return NULL;
    }
  if (start + size > uploader->staging.size)
    {
      if (!umg_vk_uploader_flush (uploader, error))
        return NULL;
      start = 0;
    }
  /* recording uses the command pool, which other threads allocate from (device frames) */
  g_rec_mutex_lock (&uploader->ctx->lock);
  if (!uploader->recording)
    {
      VkCommandBufferBeginInfo begin = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
      };
      if (!umg_vk_check (vkBeginCommandBuffer (uploader->cmd, &begin), "vkBeginCommandBuffer",
                         error))
        {
          g_rec_mutex_unlock (&uploader->ctx->lock);
          return NULL;
        }
      uploader->recording = TRUE;
    }
  region = (VkBufferCopy){ .srcOffset = start, .dstOffset = dst_offset, .size = size };
  vkCmdCopyBuffer (uploader->cmd, uploader->staging.buffer, dst, 1, &region);
  g_rec_mutex_unlock (&uploader->ctx->lock);
  uploader->used = start + size;
  return uploader->staging.mapped + start;
}

gboolean
umg_vk_uploader_flush (UmgVkUploader *uploader, GError **error)
{
  UmgVkContext *ctx = uploader->ctx;
  /* Later submissions read uploaded data from shaders and transfers; a barrier's second scope
   * reaches commands submitted after it, so one barrier here covers every later plan. */
  VkMemoryBarrier barrier = {
    .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
    .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
    .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_TRANSFER_READ_BIT,
  };
  VkSubmitInfo submit = {
    .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
    .commandBufferCount = 1,
    .pCommandBuffers = &uploader->cmd,
  };
  gboolean ok;

  if (!uploader->recording)
    return TRUE;
  /* recording uses the command pool, which other threads allocate from (device frames) */
  g_rec_mutex_lock (&ctx->lock);
  vkCmdPipelineBarrier (uploader->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                        &barrier, 0, NULL, 0, NULL);
  uploader->recording = FALSE;
  uploader->used = 0;
  if (!umg_vk_check (vkEndCommandBuffer (uploader->cmd), "vkEndCommandBuffer", error))
    {
      g_rec_mutex_unlock (&ctx->lock);
      return FALSE;
    }
  ok = umg_vk_queue_submit (ctx, 1, &submit, ctx->fence, "upload submit", error)
       && umg_vk_check (vkWaitForFences (ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX),
                        "upload wait", error)
       && umg_vk_check (vkResetFences (ctx->device, 1, &ctx->fence), "vkResetFences", error)
       && umg_vk_check (vkResetCommandBuffer (uploader->cmd, 0), "vkResetCommandBuffer", error);
  g_rec_mutex_unlock (&ctx->lock);
  return ok;
}

void
umg_vk_uploader_clear (UmgVkUploader *uploader)
{
  UmgVkContext *ctx = uploader->ctx;

  if (ctx == NULL)
    return;
  if (uploader->cmd != VK_NULL_HANDLE)
    {
      g_rec_mutex_lock (&ctx->lock);
      if (uploader->recording)
        vkEndCommandBuffer (uploader->cmd);
      vkFreeCommandBuffers (ctx->device, ctx->command_pool, 1, &uploader->cmd);
      g_rec_mutex_unlock (&ctx->lock);
    }
  umg_vk_buffer_clear (ctx, &uploader->staging);
  memset (uploader, 0, sizeof *uploader);
}

static UmgVkPipeline *
create_pipeline (UmgVkContext *ctx, const UmgVkShader *shader, const guint32 *spec, guint n_spec,
                 GError **error)
{
  g_autofree UmgVkPipeline *pipeline = g_new0 (UmgVkPipeline, 1);
  g_autofree VkDescriptorSetLayoutBinding *bindings
      = g_new0 (VkDescriptorSetLayoutBinding, MAX (shader->n_bindings, 1));
  g_autofree VkSpecializationMapEntry *entries = g_new0 (VkSpecializationMapEntry, MAX (n_spec, 1));
  VkShaderModuleCreateInfo module_info = {
    .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
    .codeSize = shader->code_size,
    .pCode = shader->code,
  };
  VkDescriptorSetLayoutCreateInfo set_info = {
    .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
    .bindingCount = shader->n_bindings,
    .pBindings = bindings,
  };
  VkPushConstantRange push_range = {
    .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    .offset = 0,
    .size = shader->push_constant_size,
  };
  VkPipelineLayoutCreateInfo layout_info = {
    .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
    .setLayoutCount = 1,
    .pushConstantRangeCount = shader->push_constant_size > 0 ? 1 : 0,
    .pPushConstantRanges = &push_range,
  };
  VkSpecializationInfo spec_info = {
    .mapEntryCount = n_spec,
    .pMapEntries = entries,
    .dataSize = n_spec * sizeof (guint32),
    .pData = spec,
  };
  VkComputePipelineCreateInfo pipeline_info = {
    .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
    .stage = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
      .stage = VK_SHADER_STAGE_COMPUTE_BIT,
      .pName = "main",
      .pSpecializationInfo = n_spec > 0 ? &spec_info : NULL,
    },
  };
  g_autofree gchar *what = g_strdup_printf ("pipeline for shader %s", shader->name);

  for (guint i = 0; i < shader->n_bindings; i++)
    bindings[i] = (VkDescriptorSetLayoutBinding){
      .binding = i,
      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
      .descriptorCount = 1,
      .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
    };
  for (guint i = 0; i < n_spec; i++)
    entries[i] = (VkSpecializationMapEntry){ i, i * sizeof (guint32), sizeof (guint32) };
  pipeline->n_bindings = shader->n_bindings;
  pipeline->push_constant_size = shader->push_constant_size;

  if (!umg_vk_check (vkCreateShaderModule (ctx->device, &module_info, NULL, &pipeline->module),
                     what, error))
    return NULL;
  if (!umg_vk_check (
          vkCreateDescriptorSetLayout (ctx->device, &set_info, NULL, &pipeline->set_layout), what,
          error))
    {
      destroy_pipeline (ctx, pipeline);
      return NULL;
    }
  layout_info.pSetLayouts = &pipeline->set_layout;
  if (!umg_vk_check (vkCreatePipelineLayout (ctx->device, &layout_info, NULL, &pipeline->layout),
                     what, error))
    {
      destroy_pipeline (ctx, pipeline);
      return NULL;
    }
  pipeline_info.stage.module = pipeline->module;
  pipeline_info.layout = pipeline->layout;
  if (!umg_vk_check (vkCreateComputePipelines (ctx->device, VK_NULL_HANDLE, 1, &pipeline_info, NULL,
                                               &pipeline->pipeline),
                     what, error))
    {
      destroy_pipeline (ctx, pipeline);
      return NULL;
    }
  return g_steal_pointer (&pipeline);
}

const UmgVkPipeline *
umg_vk_get_pipeline (UmgVkContext *ctx, const UmgVkShader *shader, const guint32 *spec,
                     guint n_spec, GError **error)
{
  GString *key = g_string_new (shader->name);
  UmgVkPipeline *pipeline;

  for (guint i = 0; i < n_spec; i++)
    g_string_append_printf (key, ":%u", spec[i]);

  g_rec_mutex_lock (&ctx->lock);
  pipeline = g_hash_table_lookup (ctx->pipelines, key->str);
  if (pipeline == NULL)
    {
      pipeline = create_pipeline (ctx, shader, spec, n_spec, error);
      if (pipeline != NULL)
        g_hash_table_insert (ctx->pipelines, g_string_free (g_steal_pointer (&key), FALSE),
                             pipeline);
    }
  g_rec_mutex_unlock (&ctx->lock);
  if (key != NULL)
    g_string_free (key, TRUE);
  return pipeline;
}
