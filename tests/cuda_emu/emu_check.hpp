// Test-side helpers for the emulated kernel tests: poisoned outputs, random
// inputs and the closeness check, shared with the [cuda] tests.
#pragma once

#include "support/vector_check.hpp"
