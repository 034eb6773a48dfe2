/* The backend interface: a backend takes the model's weights once, plans a graph once
 * (arena, constants, recorded commands) and runs the plan once per input. */
#pragma once

#include "graph.h"

G_BEGIN_DECLS

typedef struct _UmgBackend UmgBackend;
typedef struct _UmgPlan UmgPlan;

typedef struct
{
  const gchar *name;
  /* Weights stay owned by the caller and outlive the backend. */
  gboolean (*set_weights) (UmgBackend *backend, const UmgTensor *weights, guint n_weights,
                           GError **error);
  UmgPlan *(*plan) (UmgBackend *backend, const UmgGraph *graph, GError **error);
  /* inputs[i] holds graph->inputs[i].n_elements 4-byte values, outputs likewise. */
  gboolean (*run) (UmgBackend *backend, UmgPlan *plan, const void *const *inputs,
                   void *const *outputs, GError **error);
  void (*free_plan) (UmgBackend *backend, UmgPlan *plan);
  void (*free) (UmgBackend *backend);
} UmgBackendClass;

struct _UmgBackend
{
  const UmgBackendClass *klass;
  gchar *description; /* e.g. "cpu (OpenBLAS)" or "vulkan: llvmpipe (LLVM 15.0.6)" */
};

UmgBackend *umg_backend_cpu_new (GError **error);
/* device_index < 0: the first discrete or integrated GPU, else the first device;
 * allow_cpu_device: accept a software device (lavapipe) when no GPU is found. */
UmgBackend *umg_backend_vulkan_new (gint device_index, gboolean allow_cpu_device, GError **error);
/* TRUE when a Vulkan device that is a real GPU (not a CPU implementation) exists. */
gboolean umg_backend_vulkan_has_gpu (void);

void umg_backend_free (UmgBackend *backend);

G_END_DECLS
