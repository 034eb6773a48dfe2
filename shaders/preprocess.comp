#version 450
/* A video frame, or a crop of it, to the normalised network input [3, out_h, out_w], as
 * umg_frame_crop_to_tensor (src/frame.c) does on the CPU: each output pixel reads four source
 * pixels at PyTorch's bilinear taps (half-pixel centres, align_corners = false), converts them
 * to RGB from the frame's layout (for NV12 / I420 the frame's colour matrix and range, chroma
 * of the covering sample), interpolates, then applies value · gain + offset = (value / 255 - mean) / std.
 * The frame is uploaded as it arrived: bytes packed in 32-bit words, little-endian, each plane
 * at its byte offset with its stride. The crop (x, y, width, height) is read at run time and
 * clamped to the frame as umg_crop_clamp does. One invocation per output pixel. */
layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferFrame { uint words[]; };
layout (std430, binding = 1) writeonly buffer BufferDst { float dst[]; };
layout (std430, binding = 2) readonly buffer BufferCrop { int crop[]; };

layout (push_constant) uniform Params
{
  uint format, width, height, out_w, out_h;
  uint stride0, stride1, stride2;
  uint plane0, plane1, plane2; /* byte offsets from the frame's first byte */
  uint offset_frame, offset_dst, offset_crop;
  float gain0, gain1, gain2;
  float bias0, bias1, bias2;
  /* YUV → RGB (UmgYuvCoefficients) */
  float luma_gain, luma_offset, chroma_gain;
  float r_cr, g_cb, g_cr, b_cb;
} p;

/* UmgClipPixelFormat */
const uint RGB = 0, RGBA = 1, RGBX = 2, BGRX = 3, BGRA = 4, NV12 = 5, I420 = 6;

float
byte_at (uint index)
{
  uint word = words[p.offset_frame + (index >> 2)];
  return float ((word >> ((index & 3u) * 8u)) & 0xffu);
}

vec3
read_pixel (uint x, uint y)
{
  uint row = p.plane0 + y * p.stride0;
  if (p.format == RGB)
    return vec3 (byte_at (row + 3u * x), byte_at (row + 3u * x + 1u), byte_at (row + 3u * x + 2u));
  if (p.format == RGBA || p.format == RGBX)
    return vec3 (byte_at (row + 4u * x), byte_at (row + 4u * x + 1u), byte_at (row + 4u * x + 2u));
  if (p.format == BGRX || p.format == BGRA)
    return vec3 (byte_at (row + 4u * x + 2u), byte_at (row + 4u * x + 1u), byte_at (row + 4u * x));

  float luma = byte_at (row + x), cb, cr;
  if (p.format == NV12)
    {
      uint chroma = p.plane1 + (y / 2u) * p.stride1 + 2u * (x / 2u);
      cb = byte_at (chroma);
      cr = byte_at (chroma + 1u);
    }
  else
    {
      cb = byte_at (p.plane1 + (y / 2u) * p.stride1 + x / 2u);
      cr = byte_at (p.plane2 + (y / 2u) * p.stride2 + x / 2u);
    }
  precise float scaled_luma = p.luma_gain * (luma - p.luma_offset);
  precise float pb = p.chroma_gain * (cb - 128.0), pr = p.chroma_gain * (cr - 128.0);
  precise vec3 rgb = vec3 (scaled_luma + p.r_cr * pr, scaled_luma - p.g_cb * pb - p.g_cr * pr,
                           scaled_luma + p.b_cb * pb);
  return clamp (rgb, 0.0, 255.0);
}

/* lo, hi and frac of output index i for a resize from in_size to out_size samples */
void
bilinear_tap (uint i, uint in_size, uint out_size, out uint lo, out uint hi, out float frac)
{
  precise float scale = float (in_size) / float (out_size);
  precise float source = max (scale * (float (i) + 0.5) - 0.5, 0.0);
  lo = min (uint (source), in_size - 1u);
  hi = lo < in_size - 1u ? lo + 1u : lo;
  frac = min (source - float (lo), 1.0);
}

void
main ()
{
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
      * WORKGROUP_SIZE + gl_LocalInvocationID.x;
  const uint plane_size = p.out_w * p.out_h;
  if (index >= plane_size)
    return;
  const uint ox = index % p.out_w, oy = index / p.out_w;
  const int width = int (p.width), height = int (p.height);
  const uint crop_x = uint (clamp (crop[p.offset_crop], 0, width - 1));
  const uint crop_y = uint (clamp (crop[p.offset_crop + 1u], 0, height - 1));
  const uint crop_w = uint (clamp (crop[p.offset_crop + 2u], 1, width - int (crop_x)));
  const uint crop_h = uint (clamp (crop[p.offset_crop + 3u], 1, height - int (crop_y)));
  uint x0, x1, y0, y1;
  float fx, fy;
  bilinear_tap (ox, crop_w, p.out_w, x0, x1, fx);
  bilinear_tap (oy, crop_h, p.out_h, y0, y1, fy);
  x0 += crop_x;
  x1 += crop_x;
  y0 += crop_y;
  y1 += crop_y;

  precise vec3 top = (1.0 - fx) * read_pixel (x0, y0) + fx * read_pixel (x1, y0);
  precise vec3 bottom = (1.0 - fx) * read_pixel (x0, y1) + fx * read_pixel (x1, y1);
  precise vec3 value = (1.0 - fy) * top + fy * bottom;
  dst[p.offset_dst + index] = value.r * p.gain0 + p.bias0;
  dst[p.offset_dst + plane_size + index] = value.g * p.gain1 + p.bias1;
  dst[p.offset_dst + 2u * plane_size + index] = value.b * p.gain2 + p.bias2;
}
