// CKernels: element-wise kernels written in C (see each header).
#include "adamw.h"
#include "cpu.h"
