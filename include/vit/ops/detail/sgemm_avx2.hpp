// Placeholder until the packed AVX2/FMA kernel lands: defines VIT_HAVE_SGEMM_AVX2 0.
#pragma once
#define VIT_HAVE_SGEMM_AVX2 0
