// zkrecipes: the library's version, for #if checks and for logs.
//
// Kept by hand, beside project(version:) in meson.build; a test checks that
// the two agree, so an installed header never names another release.
#pragma once

#define ZKRECIPES_VERSION_MAJOR 0
#define ZKRECIPES_VERSION_MINOR 1
#define ZKRECIPES_VERSION_PATCH 0
/// One number that compares: major * 10000 + minor * 100 + patch (0.1.0 is 100).
#define ZKRECIPES_VERSION (ZKRECIPES_VERSION_MAJOR * 10000 + ZKRECIPES_VERSION_MINOR * 100 + ZKRECIPES_VERSION_PATCH)
#define ZKRECIPES_VERSION_STRING "0.1.0"

namespace zkrecipes {

struct version_info {
  int major, minor, patch;
  const char* text;
};

/// The version of the headers this translation unit was compiled with.
inline constexpr version_info library_version{ZKRECIPES_VERSION_MAJOR, ZKRECIPES_VERSION_MINOR, ZKRECIPES_VERSION_PATCH,
                                              ZKRECIPES_VERSION_STRING};

} // namespace zkrecipes
