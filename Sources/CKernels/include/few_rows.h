// few_rows.h: the product of a few activation rows with a weight's transpose,
// for decoding (one to 32 rows per step). Such a product is bound by reading
// the weight once; an sgemm call packs the weight's panels before multiplying,
// which at these row counts costs more than the arithmetic. This kernel reads
// each weight row once, from memory, and multiplies it with every activation
// row while it sits in L1.
#ifndef FACTSWEEP_FEW_ROWS_H
#define FACTSWEEP_FEW_ROWS_H

#include <stddef.h>

#include "cpu.h"

/// out[i·out_stride + j] = Σ_k x[i·depth + k] · w[j·depth + k]
/// for i < rows, j < cols: out (rows, cols of out_stride) = x (rows, depth) · wᵀ,
/// w (cols, depth) row-major.
/// On the widest path the CPU has: AVX-512, else AVX2, else plain C.
void factsweep_few_rows_product(float *out, size_t out_stride, const float *x, size_t rows,
                                const float *w, size_t cols, size_t depth);

/// `factsweep_few_rows_product` on the widest path `path` (`FACTSWEEP_PATH_*`,
/// cpu.h) allows and the CPU has: the tests compare the paths.
void factsweep_few_rows_product_on(float *out, size_t out_stride, const float *x, size_t rows,
                                   const float *w, size_t cols, size_t depth, int path);

#endif
