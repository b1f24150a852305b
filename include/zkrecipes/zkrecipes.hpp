// zkrecipes: every public header.
#pragma once

#include "zkrecipes/codec.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/multi.hpp"
#include "zkrecipes/node.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/protected_create.hpp"
#include "zkrecipes/retry.hpp"
#include "zkrecipes/session.hpp"
