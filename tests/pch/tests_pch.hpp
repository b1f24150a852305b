// The test binary's precompiled header: what nearly every test translation
// unit includes, parsed once instead of in each (most of their build time
// once the session is compiled separately). main.cpp, which defines
// DOCTEST_CONFIG_IMPLEMENT before including doctest, is built apart from it.
// Each test file still includes what it uses, so it builds without this header too.
#pragma once

#include <zkrecipes/zkrecipes.hpp>
#include <zkrecipes/testing/ensemble.hpp>
#include <zkrecipes/testing/expire.hpp>
#include <zkrecipes/testing/server.hpp>
#include <zkrecipes/testing/tcp_proxy.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>
