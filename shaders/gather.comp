#version 450
/* Row gather (embedding lookup): dst row r = table row ids[r]. One invocation per element.
 * Variant TABLE_F16 reads a 16-bit table. Ids outside the table give zeros. */
#ifdef TABLE_F16
#extension GL_EXT_shader_16bit_storage : require
#define TABLE_TYPE float16_t
#else
#define TABLE_TYPE float
#endif

layout (constant_id = 0) const uint WORKGROUP_SIZE = 256;
layout (local_size_x_id = 0) in;

layout (std430, binding = 0) readonly buffer BufferTable { TABLE_TYPE table[]; };
layout (std430, binding = 1) readonly buffer BufferIds { int ids[]; };
layout (std430, binding = 2) writeonly buffer BufferDst { float dst[]; };

layout (push_constant) uniform Params
{
  uint rows, cols, src_stride;
  uint table_rows;              /* rows available in the bound window */
  uint offset_table, offset_ids, offset_dst;
} p;

void
main ()
{
  const uint index = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x)
      * WORKGROUP_SIZE + gl_LocalInvocationID.x;
  if (index >= p.rows * p.cols)
    return;
  const uint row = index / p.cols, col = index % p.cols;
  const int id = ids[p.offset_ids + row];
  float value = 0.0;
  if (id >= 0 && uint (id) < p.table_rows)
    value = float (table[p.offset_table + uint (id) * p.src_stride + col]);
  dst[p.offset_dst + index] = value;
}
