// Build-time knobs. Each may be defined before including zkrecipes.
#pragma once

/// Largest payload accepted for a znode, in bytes. ZooKeeper's default
/// jute.maxbuffer is 1 MiB - 1 for the whole packet (data, path, ACLs and
/// headers); larger packets make the server drop the connection, which the
/// client would see as an endless connection loss. We keep 4 KiB of headroom.
#ifndef ZKRECIPES_MAX_PAYLOAD
#define ZKRECIPES_MAX_PAYLOAD (1024 * 1024 - 4096)
#endif

/// Longest path accepted, in bytes. With ZKRECIPES_MAX_PAYLOAD it keeps one
/// request (data, path, headers and a few ACL entries) inside the server's
/// packet limit. ACL sizes are not counted: keep ACL lists short.
#ifndef ZKRECIPES_MAX_PATH
#define ZKRECIPES_MAX_PATH 1024
#endif

/// Define ZKRECIPES_SEPARATE_COMPILATION in every translation unit of a
/// program, and include <zkrecipes/impl/src.hpp> in exactly one, to compile
/// the session's bodies once instead of in each translation unit that uses
/// it (docs/install.md). Header-only is the default.
#if defined(ZKRECIPES_SEPARATE_COMPILATION)
#define ZKRECIPES_DECL
#else
#define ZKRECIPES_DECL inline
#endif
