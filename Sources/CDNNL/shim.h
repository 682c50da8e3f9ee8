// oneDNN's C API (Debian: libdnnl-dev, OpenMP runtime) and helpers that
// create and run one row-major matmul primitive and pack its weights, so that
// Swift never spells oneDNN's fixed-size dims arrays. No pkg-config file ships with Debian's
// package, hence the plain `link` in the module map.
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>

/// OpenMP's thread count for the calling thread (oneDNN's parallel regions
/// take theirs from it); declared here rather than including gcc's omp.h.
void omp_set_num_threads(int);

/// libgomp's entry to a parallel region (what gcc emits for `#pragma omp
/// parallel`), so that the core's own loops run on the team oneDNN's
/// products use rather than on a second pool of threads.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);

/// One chunk of a loop split by `factsweep_team_run`.
typedef void (*factsweep_chunk_body)(void *context, long chunk);

typedef struct {
    factsweep_chunk_body body;
    void *context;
    long chunks;
} factsweep_team_job;

static void factsweep_team_member(void *data)
{
    const factsweep_team_job *job = (const factsweep_team_job *)data;
    long members = omp_get_num_threads();
    for (long chunk = omp_get_thread_num(); chunk < job->chunks; chunk += members) job->body(job->context, chunk);
}

/// Runs `body(context, chunk)` for chunk in 0..<chunks on an OpenMP team of
/// up to `chunks` threads (the calling thread is one of them); a team given
/// fewer threads (a nested region) runs the rest in turn.
static inline void factsweep_team_run(long chunks, factsweep_chunk_body body, void *context)
{
    factsweep_team_job job = {body, context, chunks};
    GOMP_parallel(factsweep_team_member, &job, (unsigned)chunks, 0);
}

/// Creates the primitive for C[m,n] = alpha·op(A)·op(B) + beta·C with explicit
/// leading dimensions; `bf16` makes A and B bf16 (C and accumulation stay f32).
/// With `packB` B's layout is left to oneDNN (`dnnl_format_tag_any`): the
/// caller reorders B into the primitive's `weights_md` once
/// (`factsweep_reorder_weights`) and passes that copy.
static inline dnnl_status_t factsweep_matmul_create(
    dnnl_primitive_t *primitive, dnnl_engine_t engine, int transA, int transB,
    dnnl_dim_t m, dnnl_dim_t n, dnnl_dim_t k, dnnl_dim_t lda, dnnl_dim_t ldb, dnnl_dim_t ldc,
    float alpha, float beta, int bf16, int packB)
{
    dnnl_data_type_t inputs = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t aDims = {m, k}, bDims = {k, n}, cDims = {m, n};
    dnnl_dims_t aStrides = {transA ? 1 : lda, transA ? lda : 1};
    dnnl_dims_t bStrides = {transB ? 1 : ldb, transB ? ldb : 1};
    dnnl_dims_t cStrides = {ldc, 1};
    dnnl_memory_desc_t aDesc, bDesc, cDesc;
    dnnl_status_t status;
    if ((status = dnnl_memory_desc_init_by_strides(&aDesc, 2, aDims, inputs, aStrides)) != dnnl_success) return status;
    status = packB ? dnnl_memory_desc_init_by_tag(&bDesc, 2, bDims, inputs, dnnl_format_tag_any)
                   : dnnl_memory_desc_init_by_strides(&bDesc, 2, bDims, inputs, bStrides);
    if (status != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_strides(&cDesc, 2, cDims, dnnl_f32, cStrides)) != dnnl_success) return status;
    dnnl_matmul_desc_t desc;
    if ((status = dnnl_matmul_desc_init(&desc, &aDesc, &bDesc, NULL, &cDesc)) != dnnl_success) return status;
    dnnl_primitive_attr_t attr;
    if ((status = dnnl_primitive_attr_create(&attr)) != dnnl_success) return status;
    dnnl_post_ops_t postOps = NULL;
    // Debian's build shares one library scratchpad between primitives, so two
    // threads running products at once overwrite each other's: each call
    // brings its own (see factsweep_matmul_execute).
    status = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (status == dnnl_success && alpha != 1.0f) status = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha);
    if (status == dnnl_success && beta != 0.0f) {
        status = dnnl_post_ops_create(&postOps);
        if (status == dnnl_success) status = dnnl_post_ops_append_sum(postOps, beta);
        if (status == dnnl_success) status = dnnl_primitive_attr_set_post_ops(attr, postOps);
    }
    dnnl_primitive_desc_t primitiveDesc = NULL;
    if (status == dnnl_success) status = dnnl_primitive_desc_create(&primitiveDesc, &desc, attr, engine, NULL);
    if (status == dnnl_success) status = dnnl_primitive_create(primitive, primitiveDesc);
    if (primitiveDesc) dnnl_primitive_desc_destroy(primitiveDesc);
    if (postOps) dnnl_post_ops_destroy(postOps);
    dnnl_primitive_attr_destroy(attr);
    return status;
}

/// Bytes of the scratchpad a primitive made by `factsweep_matmul_create` needs.
static inline size_t factsweep_scratchpad_bytes(const_dnnl_primitive_t primitive)
{
    const_dnnl_primitive_desc_t primitiveDesc;
    if (dnnl_primitive_get_primitive_desc(primitive, &primitiveDesc) != dnnl_success) return 0;
    const dnnl_memory_desc_t *scratchpadDesc = dnnl_primitive_desc_query_md(primitiveDesc, dnnl_query_scratchpad_md, 0);
    return scratchpadDesc ? dnnl_memory_desc_get_size(scratchpadDesc) : 0;
}

/// The layout a primitive made with `packB` wants B in (copied into `desc`).
static inline dnnl_status_t factsweep_weights_desc(const_dnnl_primitive_t primitive, dnnl_memory_desc_t *desc)
{
    const_dnnl_primitive_desc_t primitiveDesc;
    dnnl_status_t status = dnnl_primitive_get_primitive_desc(primitive, &primitiveDesc);
    if (status != dnnl_success) return status;
    const dnnl_memory_desc_t *weights = dnnl_primitive_desc_query_md(primitiveDesc, dnnl_query_weights_md, 0);
    if (!weights) return dnnl_invalid_arguments;
    *desc = *weights;
    return dnnl_success;
}

/// The row stride of `desc` when it lays a 2-D matrix out in plain rows
/// (row-major, no blocking: what oneDNN's AVX2 matmul prefers for a packed B),
/// else 0.
static inline dnnl_dim_t factsweep_plain_row_stride(const dnnl_memory_desc_t *desc)
{
    if (desc->ndims != 2 || desc->format_kind != dnnl_blocked || desc->offset0 != 0) return 0;
    const dnnl_blocking_desc_t *blocking = &desc->format_desc.blocking;
    if (blocking->inner_nblks != 0 || blocking->strides[1] != 1) return 0;
    return blocking->strides[0];
}

/// 1 when `desc` is the k × n bf16 layout that
/// `factsweep_nf4_dequantize_bf16_vnni` (CKernels) writes: oneDNN's
/// `BA16a64b2a` (blocks of 32 rows of B by 64 columns, each 16 row pairs by 64
/// columns, a pair's two values side by side), unpadded (k a multiple of 32,
/// n of 64), as its AVX-512 bf16 matmul asks for a packed B; else 0.
static inline int factsweep_is_bf16_vnni_layout(const dnnl_memory_desc_t *desc, dnnl_dim_t k, dnnl_dim_t n)
{
    if (desc->ndims != 2 || desc->data_type != dnnl_bf16 || desc->format_kind != dnnl_blocked || desc->offset0 != 0) return 0;
    if (desc->dims[0] != k || desc->dims[1] != n || desc->padded_dims[0] != k || desc->padded_dims[1] != n) return 0;
    if (desc->padded_offsets[0] != 0 || desc->padded_offsets[1] != 0 || k % 32 != 0 || n % 64 != 0) return 0;
    const dnnl_blocking_desc_t *blocking = &desc->format_desc.blocking;
    return blocking->inner_nblks == 3 && blocking->inner_blks[0] == 16 && blocking->inner_idxs[0] == 0 &&
           blocking->inner_blks[1] == 64 && blocking->inner_idxs[1] == 1 && blocking->inner_blks[2] == 2 &&
           blocking->inner_idxs[2] == 0 && blocking->strides[0] == 2048 && blocking->strides[1] == k * 64 &&
           dnnl_memory_desc_get_size(desc) == (size_t)(k * n * 2);
}

/// Reorders B (k×n as the product reads it: row-major with leading dimension
/// `ldb`, transposed when `transB`; bf16 when `plainBF16`, else f32) into
/// `packed`, laid out and typed as `packedDesc` (f32 → bf16 converts); with
/// `unpack` the other way, from `packed` back into plain rows at `plain`
/// (bf16 → bf16 copies the values exactly).
static inline dnnl_status_t factsweep_reorder_weights(
    dnnl_engine_t engine, dnnl_stream_t stream, int transB, dnnl_dim_t k, dnnl_dim_t n, dnnl_dim_t ldb, int plainBF16,
    void *plain, const dnnl_memory_desc_t *packedDesc, void *packed, int unpack)
{
    dnnl_dims_t bDims = {k, n};
    dnnl_dims_t bStrides = {transB ? 1 : ldb, transB ? ldb : 1};
    dnnl_memory_desc_t plainDesc;
    dnnl_status_t status = dnnl_memory_desc_init_by_strides(&plainDesc, 2, bDims, plainBF16 ? dnnl_bf16 : dnnl_f32, bStrides);
    if (status != dnnl_success) return status;
    const dnnl_memory_desc_t *fromDesc = unpack ? packedDesc : &plainDesc, *toDesc = unpack ? &plainDesc : packedDesc;
    dnnl_primitive_desc_t reorderDesc = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t source = NULL, destination = NULL;
    status = dnnl_reorder_primitive_desc_create(&reorderDesc, fromDesc, engine, toDesc, engine, NULL);
    if (status == dnnl_success) status = dnnl_primitive_create(&reorder, reorderDesc);
    if (status == dnnl_success) status = dnnl_memory_create(&source, fromDesc, engine, unpack ? packed : plain);
    if (status == dnnl_success) status = dnnl_memory_create(&destination, toDesc, engine, unpack ? plain : packed);
    if (status == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, destination}};
        status = dnnl_primitive_execute(reorder, stream, 2, args);
        if (status == dnnl_success) status = dnnl_stream_wait(stream);
    }
    if (destination) dnnl_memory_destroy(destination);
    if (source) dnnl_memory_destroy(source);
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorderDesc) dnnl_primitive_desc_destroy(reorderDesc);
    return status;
}

/// The memory objects (source, weights, destination, scratchpad) one thread
/// runs one primitive with: made by its first call, pointed at each later
/// call's buffers, destroyed by `factsweep_matmul_memories_destroy`.
typedef struct {
    dnnl_memory_t memories[4];
    void *handles[4];
} factsweep_matmul_memories;

static inline void factsweep_matmul_memories_destroy(factsweep_matmul_memories *kept) {
    for (int i = 0; i < 4; i++) if (kept->memories[i]) dnnl_memory_destroy(kept->memories[i]);
}

/// Runs a primitive made by `factsweep_matmul_create` on the given buffers
/// (element types as it was created with; B packed when it was made with
/// `packB`) on `stream`, waiting for it to finish. `scratchpad` holds at least
/// `factsweep_scratchpad_bytes` (NULL when that is 0): Debian's build shares
/// one library scratchpad between primitives, so each calling thread brings
/// its own, as it brings its own stream (streams are not thread-safe).
/// The memory objects are the calling thread's for `primitive`, kept in
/// `kept` (zeroed before its first use) instead of made and destroyed per
/// call: a training step makes over a thousand products, and creating their
/// memory objects was oneDNN's largest cost outside its kernels. A buffer is
/// set only when it changed.
static inline dnnl_status_t factsweep_matmul_execute_kept(
    const_dnnl_primitive_t primitive, dnnl_engine_t engine, dnnl_stream_t stream, factsweep_matmul_memories *kept,
    void *a, void *b, float *c, void *scratchpad)
{
    void *handles[4] = {a, b, c, scratchpad};
    int count = scratchpad ? 4 : 3;
    dnnl_status_t status = dnnl_success;
    if (!kept->memories[0]) {
        const_dnnl_primitive_desc_t primitiveDesc;
        status = dnnl_primitive_get_primitive_desc(primitive, &primitiveDesc);
        const dnnl_query_t queries[4] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md, dnnl_query_scratchpad_md};
        for (int i = 0; i < count && status == dnnl_success; i++) {
            const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(primitiveDesc, queries[i], 0);
            status = dnnl_memory_create(&kept->memories[i], md, engine, handles[i]);
            if (status == dnnl_success) kept->handles[i] = handles[i];
        }
        if (status != dnnl_success) {
            // Leave nothing half made: the next call tries again from scratch.
            factsweep_matmul_memories_destroy(kept);
            *kept = (factsweep_matmul_memories){0};
            return status;
        }
    } else {
        for (int i = 0; i < count && status == dnnl_success; i++) {
            // A primitive's scratchpad size is fixed, so the first call made every object a later one needs.
            if (!kept->memories[i]) return dnnl_invalid_arguments;
            if (kept->handles[i] != handles[i]) {
                status = dnnl_memory_set_data_handle_v2(kept->memories[i], handles[i], stream);
                if (status == dnnl_success) kept->handles[i] = handles[i];
            }
        }
    }
    if (status != dnnl_success) return status;
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, kept->memories[0]}, {DNNL_ARG_WEIGHTS, kept->memories[1]}, {DNNL_ARG_DST, kept->memories[2]},
        {DNNL_ARG_SCRATCHPAD, kept->memories[3]}};
    status = dnnl_primitive_execute(primitive, stream, count, args);
    if (status == dnnl_success) status = dnnl_stream_wait(stream);
    return status;
}

/// `factsweep_matmul_execute_kept` with memory objects made for this call only
/// (the path without reuse, `FACTSWEEP_ONEDNN_REUSE=off`).
static inline dnnl_status_t factsweep_matmul_execute(
    const_dnnl_primitive_t primitive, dnnl_engine_t engine, dnnl_stream_t stream, void *a, void *b, float *c,
    void *scratchpad)
{
    factsweep_matmul_memories once = {0};
    dnnl_status_t status = factsweep_matmul_execute_kept(primitive, engine, stream, &once, a, b, c, scratchpad);
    factsweep_matmul_memories_destroy(&once);
    return status;
}
