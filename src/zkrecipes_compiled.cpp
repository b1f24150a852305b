// The session's bodies, compiled once for every program this project builds
// (ZKRECIPES_SEPARATE_COMPILATION, see docs/install.md). Users of the
// installed headers need not do this: header-only is the default.
#include <zkrecipes/impl/src.hpp>
