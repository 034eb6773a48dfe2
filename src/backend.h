/* The backend interface: a backend takes the model's weights once, plans a graph once
 * (arena, constants, recorded commands) and runs the plan once per input. */
#pragma once

#include "graph.h"

#include <vulkan/vulkan.h>

G_BEGIN_DECLS

typedef struct _UmgBackend UmgBackend;
typedef struct _UmgPlan UmgPlan;

/* A direct input that already lies in device memory (Vulkan backend only): the input's bytes
 * start at offset in buffer, on the backend's own device. */
typedef struct
{
  VkBuffer buffer;
  VkDeviceSize offset;
} UmgDeviceInput;

typedef struct
{
  const gchar *name;
  /* Weights stay owned by the caller and outlive the backend. */
  gboolean (*set_weights) (UmgBackend *backend, const UmgTensor *weights, guint n_weights,
                           GError **error);
  /* Validates the graph (umg_graph_validate) and prepares it; the graph outlives the plan. */
  UmgPlan *(*plan) (UmgBackend *backend, const UmgGraph *graph, GError **error);
  /* inputs[i] holds graph->inputs[i].n_elements 4-byte values (a direct input: its n_bytes),
   * outputs likewise. device_inputs is NULL, or has one entry per input: where its buffer is
   * set, direct input i is read from there on the device and inputs[i] is ignored. */
  gboolean (*run) (UmgBackend *backend, UmgPlan *plan, const void *const *inputs,
                   const UmgDeviceInput *device_inputs, void *const *outputs, GError **error);
  void (*free_plan) (UmgBackend *backend, UmgPlan *plan);
  void (*free) (UmgBackend *backend);
} UmgBackendClass;

struct _UmgBackend
{
  const UmgBackendClass *klass;
  /* TRUE when run() copies each direct input from the host (one copy); FALSE when it reads
   * them where the caller keeps them. */
  gboolean copies_direct_inputs;
  gchar *description; /* e.g. "cpu (OpenBLAS)" or "vulkan: llvmpipe (LLVM 15.0.6)" */
  /* The memory the device reports: physical RAM for the CPU, the largest device-local heap for
   * Vulkan; 0 when unknown. Models and passes are checked against it before allocating. */
  guint64 memory_bytes;
};

UmgBackend *umg_backend_cpu_new (GError **error);
/* device_index >= 0: that device of the enumeration; < 0: the first discrete GPU, else the first
 * integrated one, else a virtual one, else, with allow_cpu_device, a software device such as
 * lavapipe (vk_context.c, select_physical_device). */
UmgBackend *umg_backend_vulkan_new (gint device_index, gboolean allow_cpu_device, GError **error);
/* The Vulkan backend on a device someone else created (umgclip-vulkan.h). */
typedef struct _UmgClipVulkanDevice UmgClipVulkanDevice;
UmgBackend *umg_backend_vulkan_new_adopted (const UmgClipVulkanDevice *device, GError **error);
/* The Vulkan context of a Vulkan backend (a borrowed reference), NULL for other backends. */
struct _UmgVkContext;
struct _UmgVkContext *umg_backend_vulkan_get_context (UmgBackend *backend);
/* TRUE when a Vulkan device that is a real GPU (not a CPU implementation) exists. */
gboolean umg_backend_vulkan_has_gpu (void);

void umg_backend_free (UmgBackend *backend);

G_END_DECLS
