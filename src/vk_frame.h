/* Frames in Vulkan memory, copied on the device (vk_frame.c): what the context needs of them. */
#pragma once

#include "backend.h"
#include "umgclip-vulkan.h"
#include "vk_context.h"

G_BEGIN_DECLS

/* Whether frame lies on vk's device with the format, size and strides of layout. */
gboolean umg_device_frame_matches (const UmgClipDeviceFrame *frame, UmgVkContext *vk,
                                   const UmgClipFrame *layout);
/* Where plane of frame starts in device memory. */
void umg_device_frame_plane (const UmgClipDeviceFrame *frame, guint plane, UmgDeviceInput *out);
/* Frees the frame buffers kept for reuse (when the context goes). */
void umg_vk_frame_buffers_clear (UmgVkContext *vk);

G_END_DECLS
