// OpenBLAS's CBLAS interface (Debian: libopenblas-dev). openblas_set_num_threads
// lets each worker process take its share of the host's cores.
#include <cblas.h>
