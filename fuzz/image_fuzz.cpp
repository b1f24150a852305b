// libFuzzer target: the untrusted input of image-worker's API server
// (examples/image-worker/image.hpp, request.hpp), that is the bytes a worker
// posts to the callback (sniffing, the EXIF GPS read with libexif, the place
// directory and storage path made from them) and the fetch request bodies.
//
// The first byte chooses what the rest is (a letter keeps seeds readable):
//   'r'            a fetch request body for parse_fetch_request
//   anything else  image bytes
//
// Properties: nothing crashes, leaks or trips a sanitizer. Images: sniff()
// finds an image exactly when why_not_image() is empty; read_gps() gives a
// position only for a JPEG, only finite and in range (|lat| <= 90,
// |lon| <= 180, |alt| <= 100 km, area at most 1024 bytes), and a refusal
// always has a reason; place_dir() of it (and of the input taken as area
// text) is a safe single name, and storage_path() stays inside the root with
// that name as its parent. Requests: a refusal is 400 bad_request or 413
// too_large (exactly when the body is over 64 KiB) with a message, and names
// a known field or none; an accepted request holds only valid values, and its
// URL, re-parsed, gives the same parts.
#include "image.hpp"
#include "request.hpp"

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

using namespace image_worker;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

const std::filesystem::path root = "/srv/images";
const auto when = std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 20000);

void check_place(const std::optional<gps_fix>& fix) {
  const std::string d = place_dir(fix);
  check(!d.empty() && d != "." && d != ".." && d.size() <= max_slug);
  for (char c : d) check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
  check(d.front() != '-' && d.back() != '-');
  const auto p = storage_path(root, fix, when, "net-a", "id-1", image_kind::jpeg);
  check(inside(root, p));
  check(p.parent_path() == root / d);
}

void image(std::string_view b) {
  const image_kind k = sniff(b);
  const std::string why_not = why_not_image(b);
  check((k == image_kind::none) == !why_not.empty());

  std::string why;
  const auto g = read_gps(b, &why);
  if (g) {
    check(k == image_kind::jpeg);
    check(valid_coordinates(g->lat, g->lon));
    if (g->alt) check(std::isfinite(*g->alt) && std::fabs(*g->alt) <= max_abs_altitude);
    check(g->area.size() <= max_area_bytes);
  } else {
    check(!why.empty());
  }
  check_place(g);

  // The input as an area text and as coordinates: place_dir must stay safe
  // whatever a caller puts in a gps_fix.
  gps_fix raw;
  raw.area = std::string(b.substr(0, 2 * max_area_bytes));
  if (b.size() >= 2 * sizeof(double)) {
    std::memcpy(&raw.lat, b.data(), sizeof(double));
    std::memcpy(&raw.lon, b.data() + sizeof(double), sizeof(double));
  }
  check_place(raw);
  raw.area.clear();
  check_place(raw);
}

void request(std::string_view body) {
  const auto r = parse_fetch_request(body);
  if (!r) {
    const auto& e = r.error();
    check((e.status == 413) == (body.size() > max_request_body));
    check((e.status == 400 && e.code == "bad_request") || (e.status == 413 && e.code == "too_large"));
    check(e.field.empty() || e.field == "url" || e.field == "network" || e.field == "dataId");
    check(!e.message.empty());
    if (!e.field.empty()) check(e.message.find("\"" + e.field + "\"") != std::string::npos);
    return;
  }
  const auto& v = r.value();
  check(body.size() <= max_request_body);
  check(valid_network_tag(v.network));
  check(valid_data_id(v.data_id));
  check(v.where.scheme == "http");
  check(!v.where.host.empty() && v.where.host.size() <= max_host);
  check(v.where.port >= 1);
  check(!v.where.path.empty() && v.where.path.front() == '/' && v.where.path.size() <= max_url_path);
  for (char c : v.where.path) check(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7F);
  check(v.url == "http://" + v.where.host + ":" + std::to_string(v.where.port) + v.where.path);
  const auto again = parse_http_url(v.url);
  check(again && again->host == v.where.host && again->port == v.where.port && again->path == v.where.path);
  // What the server does next with an accepted request must not throw.
  const auto p = storage_path(root, std::nullopt, when, v.network, v.data_id, image_kind::png);
  check(inside(root, p));
  check(p.filename().string().find(v.data_id) != std::string::npos);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 'r')
    request(rest);
  else
    image(rest);
  return 0;
}
