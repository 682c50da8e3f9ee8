// CKernels: element-wise kernels written in C (see each header).
#include "adamw.h"
#include "bf16.h"
#include "cached_attention.h"
#include "cpu.h"
#include "cross_entropy.h"
#include "few_rows.h"
#include "nf4.h"
#include "swiglu.h"
