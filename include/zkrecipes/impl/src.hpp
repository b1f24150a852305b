// zkrecipes: the bodies compiled once, for ZKRECIPES_SEPARATE_COMPILATION.
//
// Include this in exactly one translation unit of the program, built (like
// every other) with ZKRECIPES_SEPARATE_COMPILATION defined:
//
//   // zkrecipes.cpp
//   #include <zkrecipes/impl/src.hpp>
//
// Header-only (the macro undefined) it adds nothing: session.hpp already
// carries the bodies, inline.
#pragma once

#include "zkrecipes/session.hpp"

#if defined(ZKRECIPES_SEPARATE_COMPILATION)
#include "zkrecipes/impl/session.ipp"
#endif
