// zkrecipes: every public header.
#pragma once

#include "zkrecipes/codec.hpp"
#include "zkrecipes/error.hpp"
#include "zkrecipes/hold.hpp"
#include "zkrecipes/leader_latch.hpp"
#include "zkrecipes/leader_selector.hpp"
#include "zkrecipes/mutex.hpp"
#include "zkrecipes/multi.hpp"
#include "zkrecipes/node.hpp"
#include "zkrecipes/path.hpp"
#include "zkrecipes/protected_create.hpp"
#include "zkrecipes/read_write_lock.hpp"
#include "zkrecipes/retry.hpp"
#include "zkrecipes/semaphore.hpp"
#include "zkrecipes/session.hpp"
#include "zkrecipes/single_node_lock.hpp"
