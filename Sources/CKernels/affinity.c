// affinity.c: see include/affinity.h.
#define _GNU_SOURCE
#include "affinity.h"

#include <sched.h>

// libgomp's place queries (OpenMP 4.5), declared here rather than including
// gcc's omp.h; libgomp is linked through oneDNN's module.
int omp_get_proc_bind(void);
int omp_get_num_places(void);
int omp_get_place_num_procs(int place);
void omp_get_place_proc_ids(int place, int *ids);

int factsweep_widen_to_openmp_places(void) {
    if (omp_get_proc_bind() == 0) return 0;  // omp_proc_bind_false: libgomp bound nothing
    int places = omp_get_num_places();
    if (places < 1) return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int place = 0; place < places; place++) {
        int count = omp_get_place_num_procs(place);
        if (count <= 0) continue;
        int ids[count];
        omp_get_place_proc_ids(place, ids);
        for (int i = 0; i < count; i++) {
            if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], &set);
        }
    }
    if (CPU_COUNT(&set) == 0) return 0;
    return sched_setaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
}
