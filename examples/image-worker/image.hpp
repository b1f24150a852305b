// image-worker: what the API server's callback does with the bytes a worker
// posts, before anything touches the disk. Pure and I/O-free: sniffing the
// image kind by content, reading the EXIF GPS position (Debian's libexif),
// and turning a place and a request into a path under the image root that no
// metadata can steer outside it. image-api, the tests and the fuzz target
// share it.
//
// Nothing here trusts its input: every byte string may come from anywhere.
#pragma once

#include <libexif/exif-data.h>
#include <libexif/exif-utils.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace image_worker {

// ------------------------------------------------------------------ names

/// A network tag: 1 to 32 of [a-z0-9-]. Whether the tag is known is the
/// server's business (the service registry), not this function's.
inline bool valid_network_tag(std::string_view t) {
  if (t.empty() || t.size() > 32) return false;
  for (char c : t)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

/// A data id: 1 to 64 of [A-Za-z0-9_.-], not starting with '.' (so never
/// ".", ".." or a hidden file).
inline bool valid_data_id(std::string_view d) {
  if (d.empty() || d.size() > 64 || d.front() == '.') return false;
  for (char c : d) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// ------------------------------------------------------------------ sniffing

enum class image_kind { none, jpeg, png };

inline const char* to_string(image_kind k) {
  switch (k) {
  case image_kind::jpeg: return "jpeg";
  case image_kind::png: return "png";
  default: return "none";
  }
}

namespace detail {

inline std::uint8_t byte_at(std::string_view b, std::size_t i) { return static_cast<std::uint8_t>(b[i]); }

inline std::uint32_t be32(std::string_view b, std::size_t i) {
  return (std::uint32_t{byte_at(b, i)} << 24) | (std::uint32_t{byte_at(b, i + 1)} << 16) |
         (std::uint32_t{byte_at(b, i + 2)} << 8) | std::uint32_t{byte_at(b, i + 3)};
}

inline std::string hex_byte(std::uint8_t v) {
  char buf[3];
  std::snprintf(buf, sizeof buf, "%02x", v);
  return buf;
}

/// "3c 68 74 6d": the first (up to) n bytes, for messages.
inline std::string hex_prefix(std::string_view b, std::size_t n = 4) {
  std::string out;
  for (std::size_t i = 0; i < b.size() && i < n; ++i) {
    if (i) out += ' ';
    out += hex_byte(byte_at(b, i));
  }
  return out;
}

/// CRC-32 as PNG (and zlib's crc32) computes it: reflected 0xEDB88320,
/// initial and final XOR 0xFFFFFFFF. Own code, so image.hpp needs no zlib.
inline std::uint32_t crc32(std::string_view b) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xFFFFFFFFu;
  for (char ch : b) c = table[(c ^ static_cast<std::uint8_t>(ch)) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

inline constexpr std::string_view png_signature{"\x89PNG\r\n\x1a\n", 8};
inline constexpr std::string_view jpeg_start{"\xff\xd8\xff", 3};
inline constexpr std::string_view exif_header{"Exif\0\0", 6};

/// What walking a JPEG's markers from SOI up to SOS found.
struct jpeg_walk {
  std::string problem;        ///< empty: a plausible JPEG
  std::size_t exif_at = 0;    ///< the first APP1 "Exif\0\0" payload (offset, size); size 0: none
  std::size_t exif_size = 0;
};

/// Walks the marker segments after SOI with bounds checks: every segment
/// before SOS has a length that fits in the bytes, there is a frame header
/// (SOFn) with 1..4 components before the scan header, and the scan header
/// (SOS) is complete. What follows SOS (the entropy-coded data) is not
/// examined. Linear: each step moves at least four bytes.
inline jpeg_walk walk_jpeg(std::string_view b) {
  jpeg_walk w;
  auto fail = [&](std::string why) {
    w.problem = "a JPEG start (ff d8 ff) but " + std::move(why);
    w.exif_size = 0;
    return w;
  };
  const std::size_t n = b.size();
  std::size_t pos = 2;
  bool frame = false;
  for (;;) {
    if (pos >= n) return fail("it ends before the image data (no SOS marker)");
    if (byte_at(b, pos) != 0xFF)
      return fail("byte " + hex_byte(byte_at(b, pos)) + " at offset " + std::to_string(pos) +
                  " where a marker should be");
    const std::size_t marker_at = pos;
    while (pos < n && byte_at(b, pos) == 0xFF) ++pos; // fill bytes
    if (pos >= n) return fail("it ends inside a marker");
    const std::uint8_t m = byte_at(b, pos++);
    const std::string name = "marker ff " + hex_byte(m) + " at offset " + std::to_string(marker_at);
    if (m == 0x00) return fail("a stuffed byte (ff 00) at offset " + std::to_string(marker_at) + " before the image data");
    if (m == 0xD8) return fail("a second SOI (" + name + ")");
    if (m == 0xD9) return fail("EOI (" + name + ") before any image data");
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) return fail("a standalone " + name + " outside a scan");
    if (n - pos < 2) return fail("it ends inside the length of " + name);
    const std::size_t len = (std::size_t{byte_at(b, pos)} << 8) | byte_at(b, pos + 1);
    if (len < 2) return fail("a segment length of " + std::to_string(len) + " (" + name + ")");
    if (len > n - pos) return fail("the segment of " + name + " runs past the end");
    const std::string_view seg = b.substr(pos + 2, len - 2); // the payload after the length
    const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      // precision, height (2), width (2), components, 3 bytes per component
      if (seg.size() < 6) return fail("a short frame header (" + name + ")");
      const std::size_t comps = byte_at(seg, 5);
      const std::size_t width = (std::size_t{byte_at(seg, 3)} << 8) | byte_at(seg, 4);
      if (comps < 1 || comps > 4 || seg.size() != 6 + 3 * comps)
        return fail("a frame header with " + std::to_string(comps) + " components (" + name + ")");
      if (width == 0) return fail("a frame header with zero width (" + name + ")");
      if (frame) return fail("a second frame header (" + name + ")");
      frame = true;
    } else if (m == 0xE1 && w.exif_size == 0 && seg.substr(0, exif_header.size()) == exif_header) {
      w.exif_at = pos + 2;
      w.exif_size = seg.size();
    } else if (m == 0xDA) {
      if (!frame) return fail("a scan header (" + name + ") before any frame header");
      if (seg.empty()) return fail("an empty scan header (" + name + ")");
      const std::size_t comps = byte_at(seg, 0);
      if (comps < 1 || comps > 4 || seg.size() != 4 + 2 * comps)
        return fail("a scan header with " + std::to_string(comps) + " components (" + name + ")");
      return w; // plausible up to the image data
    }
    pos += len;
  }
}

/// Empty when the PNG signature is followed by a valid IHDR chunk.
inline std::string png_problem(std::string_view b) {
  const std::string sig_but = "a PNG signature but ";
  const std::size_t at = png_signature.size();
  if (b.size() < at + 8 || be32(b, at) != 13 || b.substr(at + 4, 4) != "IHDR") return sig_but + "no IHDR";
  if (b.size() < at + 8 + 13 + 4) return sig_but + "a truncated IHDR";
  const std::string_view ihdr = b.substr(at + 8, 13);
  if (crc32(b.substr(at + 4, 4 + 13)) != be32(b, at + 8 + 13)) return sig_but + "the IHDR CRC is wrong";
  const std::uint32_t width = be32(ihdr, 0), height = be32(ihdr, 4);
  if (width == 0 || height == 0) return sig_but + "the IHDR has a zero width or height";
  if (width > 0x7FFFFFFFu || height > 0x7FFFFFFFu) return sig_but + "the IHDR has a width or height over 2^31-1";
  const unsigned depth = byte_at(ihdr, 8), colour = byte_at(ihdr, 9);
  bool ok = false;
  switch (colour) {
  case 0: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; break;
  case 3: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; break;
  case 2: case 4: case 6: ok = depth == 8 || depth == 16; break;
  default: break;
  }
  if (!ok)
    return sig_but + "the IHDR has colour type " + std::to_string(colour) + " with bit depth " + std::to_string(depth);
  if (byte_at(ihdr, 10) != 0 || byte_at(ihdr, 11) != 0 || byte_at(ihdr, 12) > 1)
    return sig_but + "the IHDR names an unknown compression, filter or interlace method";
  return {};
}

struct sniffed {
  image_kind kind = image_kind::none;
  std::string problem; ///< empty exactly when kind != none
};

inline sniffed examine(std::string_view b) {
  if (b.empty()) return {image_kind::none, "empty"};
  if (b.size() >= jpeg_start.size() && b.substr(0, jpeg_start.size()) == jpeg_start) {
    auto w = walk_jpeg(b);
    if (w.problem.empty()) return {image_kind::jpeg, {}};
    return {image_kind::none, std::move(w.problem)};
  }
  if (b.size() >= png_signature.size() && b.substr(0, png_signature.size()) == png_signature) {
    auto p = png_problem(b);
    if (p.empty()) return {image_kind::png, {}};
    return {image_kind::none, std::move(p)};
  }
  if (b.size() < png_signature.size() && png_signature.substr(0, b.size()) == b)
    return {image_kind::none, "only " + std::to_string(b.size()) + " bytes: the start of a PNG signature"};
  if (b.size() < jpeg_start.size() && jpeg_start.substr(0, b.size()) == b)
    return {image_kind::none, "only " + std::to_string(b.size()) + " bytes: the start of a JPEG"};
  return {image_kind::none, "not JPEG or PNG (starts with " + hex_prefix(b) + ")"};
}

} // namespace detail

/// The kind of image the bytes are, by content alone: JPEG is SOI (ff d8 ff)
/// and a plausible segment structure up to SOS; PNG is the 8-byte signature
/// followed by a valid IHDR chunk (length 13, CRC right, sane fields).
inline image_kind sniff(std::string_view bytes) { return detail::examine(bytes).kind; }

/// Why the bytes are not an image ("empty", "a PNG signature but no IHDR",
/// "not JPEG or PNG (starts with 3c 68 74 6d)", ...); empty when sniff()
/// finds an image.
inline std::string why_not_image(std::string_view bytes) { return detail::examine(bytes).problem; }

// ------------------------------------------------------------------ EXIF GPS

/// Where a photo was taken: degrees north (negative: south) and east
/// (negative: west), metres above sea level, and the free text of
/// GPSAreaInformation (raw bytes, untrusted: see place_dir).
struct gps_fix {
  double lat = 0, lon = 0;
  std::optional<double> alt;
  std::string area;
};

/// Bounds for what read_gps gives out.
inline constexpr std::size_t max_area_bytes = 1024;
inline constexpr double max_abs_altitude = 100000.0; ///< metres; beyond it the altitude is dropped

inline bool valid_coordinates(double lat, double lon) {
  return std::isfinite(lat) && std::isfinite(lon) && std::fabs(lat) <= 90.0 && std::fabs(lon) <= 180.0;
}

namespace detail {

struct exif_data_ptr {
  ExifData* d = nullptr;
  exif_data_ptr() = default;
  exif_data_ptr(const exif_data_ptr&) = delete;
  exif_data_ptr& operator=(const exif_data_ptr&) = delete;
  ~exif_data_ptr() {
    if (d) exif_data_unref(d);
  }
};

inline ExifEntry* gps_entry(ExifContent* gps, int tag) {
  return gps ? exif_content_get_entry(gps, static_cast<ExifTag>(tag)) : nullptr;
}

/// The ASCII value of a short text tag ("N"), up to its first NUL.
inline std::optional<std::string> gps_ascii(ExifEntry* e) {
  if (!e || !e->data || e->size == 0 || (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED))
    return std::nullopt;
  std::string s(reinterpret_cast<const char*>(e->data), e->size);
  if (auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  return s;
}

/// Degrees from a GPSLatitude/GPSLongitude entry: three RATIONALs (degrees,
/// minutes, seconds), each with a non-zero denominator.
inline std::optional<double> gps_degrees(ExifEntry* e, ExifByteOrder order, const char* name, std::string& why) {
  if (!e) {
    why = std::string(name) + " is missing";
    return std::nullopt;
  }
  if (e->format != EXIF_FORMAT_RATIONAL || e->components != 3 || !e->data || e->size < 3 * 8) {
    why = std::string(name) + " is not three rationals";
    return std::nullopt;
  }
  double v = 0;
  const double scale[3] = {1.0, 60.0, 3600.0};
  for (int i = 0; i < 3; ++i) {
    const ExifRational r = exif_get_rational(e->data + 8 * i, order);
    if (r.denominator == 0) {
      why = std::string(name) + " has a zero denominator";
      return std::nullopt;
    }
    v += static_cast<double>(r.numerator) / static_cast<double>(r.denominator) / scale[i];
  }
  return v;
}

/// GPSAreaInformation: UNDEFINED bytes whose first 8 name the character
/// code ("ASCII\0\0\0", "UNICODE\0", "JIS\0\0\0\0\0" or eight NULs). UNICODE
/// (UCS-2 in the file's byte order) keeps the ASCII code units and turns the
/// others into 0xff; the rest is taken as bytes. Trailing NULs are dropped,
/// and at most max_area_bytes are kept. An ASCII-format entry is read too.
inline std::string gps_area(ExifEntry* e, ExifByteOrder order) {
  std::string out;
  if (!e || !e->data || e->size == 0) return out;
  const auto* d = e->data;
  if (e->format == EXIF_FORMAT_ASCII) {
    out.assign(reinterpret_cast<const char*>(d), e->size);
  } else if (e->format == EXIF_FORMAT_UNDEFINED && e->size >= 8) {
    const std::string_view code(reinterpret_cast<const char*>(d), 8);
    if (code == std::string_view("UNICODE\0", 8)) {
      for (std::size_t i = 8; i + 1 < e->size && out.size() < max_area_bytes; i += 2) {
        const unsigned u = exif_get_short(d + i, order);
        out += u < 0x80 ? static_cast<char>(u) : '\xff';
      }
    } else {
      out.assign(reinterpret_cast<const char*>(d + 8), e->size - 8);
    }
  }
  while (!out.empty() && out.back() == '\0') out.pop_back();
  if (out.size() > max_area_bytes) out.resize(max_area_bytes);
  return out;
}

} // namespace detail

/// The GPS position in a JPEG's EXIF (the first APP1 "Exif" segment before
/// SOS), or nullopt with the reason in *why. Latitude and longitude are
/// required, with their N/S and E/W references, and must be finite and in
/// range (|lat| <= 90, |lon| <= 180) with no zero denominator. The altitude
/// (GPSAltitude, GPSAltitudeRef 1 = below sea level) and the area text are
/// optional: a malformed or absurd altitude (over 100 km) is left out, a
/// malformed area is empty. PNG: nullopt (EXIF in PNG is not read).
inline std::optional<gps_fix> read_gps(std::string_view jpeg_bytes, std::string* why = nullptr) {
  std::string reason;
  auto refuse = [&](std::string r) -> std::optional<gps_fix> {
    if (why) *why = std::move(r);
    return std::nullopt;
  };
  const auto s = detail::examine(jpeg_bytes);
  if (s.kind == image_kind::png) return refuse("a PNG: EXIF in PNG files is not read, so there is no GPS position");
  if (s.kind != image_kind::jpeg) return refuse("not an image: " + s.problem);
  const auto w = detail::walk_jpeg(jpeg_bytes);
  if (w.exif_size == 0) return refuse("no EXIF (APP1) segment");

  // Only the APP1 payload ("Exif\0\0" + TIFF) goes to libexif: it never sees
  // the rest of the file, and the segment length bounds what it reads.
  detail::exif_data_ptr ed;
  ed.d = exif_data_new();
  if (!ed.d) return refuse("out of memory");
  // No "fixing" of the data to the specification: we only read.
  exif_data_unset_option(ed.d, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_load_data(ed.d, reinterpret_cast<const unsigned char*>(jpeg_bytes.data() + w.exif_at),
                      static_cast<unsigned int>(w.exif_size));
  ExifContent* gps = ed.d->ifd[EXIF_IFD_GPS];
  if (!gps || gps->count == 0) return refuse("the EXIF data has no GPS information");
  const ExifByteOrder order = exif_data_get_byte_order(ed.d);

  auto lat = detail::gps_degrees(detail::gps_entry(gps, EXIF_TAG_GPS_LATITUDE), order, "GPSLatitude", reason);
  if (!lat) return refuse(reason);
  auto lon = detail::gps_degrees(detail::gps_entry(gps, EXIF_TAG_GPS_LONGITUDE), order, "GPSLongitude", reason);
  if (!lon) return refuse(reason);
  const auto lat_ref = detail::gps_ascii(detail::gps_entry(gps, EXIF_TAG_GPS_LATITUDE_REF));
  if (!lat_ref) return refuse("GPSLatitudeRef is missing");
  if (*lat_ref != "N" && *lat_ref != "S") return refuse("GPSLatitudeRef is not N or S");
  const auto lon_ref = detail::gps_ascii(detail::gps_entry(gps, EXIF_TAG_GPS_LONGITUDE_REF));
  if (!lon_ref) return refuse("GPSLongitudeRef is missing");
  if (*lon_ref != "E" && *lon_ref != "W") return refuse("GPSLongitudeRef is not E or W");

  gps_fix fix;
  fix.lat = *lat_ref == "S" ? -*lat : *lat;
  fix.lon = *lon_ref == "W" ? -*lon : *lon;
  if (!std::isfinite(fix.lat) || std::fabs(fix.lat) > 90.0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "latitude %.6f is out of range (at most 90 degrees)", fix.lat);
    return refuse(buf);
  }
  if (!std::isfinite(fix.lon) || std::fabs(fix.lon) > 180.0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "longitude %.6f is out of range (at most 180 degrees)", fix.lon);
    return refuse(buf);
  }

  if (ExifEntry* a = detail::gps_entry(gps, EXIF_TAG_GPS_ALTITUDE);
      a && a->format == EXIF_FORMAT_RATIONAL && a->components == 1 && a->data && a->size >= 8) {
    const ExifRational r = exif_get_rational(a->data, order);
    if (r.denominator != 0) {
      double alt = static_cast<double>(r.numerator) / static_cast<double>(r.denominator);
      if (ExifEntry* ar = detail::gps_entry(gps, EXIF_TAG_GPS_ALTITUDE_REF);
          ar && ar->data && ar->size >= 1 && ar->data[0] == 1)
        alt = -alt;
      if (std::isfinite(alt) && std::fabs(alt) <= max_abs_altitude) fix.alt = alt;
    }
  }
  fix.area = detail::gps_area(detail::gps_entry(gps, EXIF_TAG_GPS_AREA_INFORMATION), order);
  return fix;
}

// ------------------------------------------------------------------ storage

inline constexpr std::size_t max_slug = 40;

/// The area text as a slug: lowercase [a-z0-9], every run of other bytes
/// (including '-', '.', '/', NUL and non-ASCII) one '-', no '-' at either
/// end, at most max_slug characters. Empty when nothing is left.
inline std::string slug(std::string_view text) {
  std::string out;
  bool dash = false;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    char keep = 0;
    if (c >= 'a' && c <= 'z') keep = static_cast<char>(c);
    else if (c >= 'A' && c <= 'Z') keep = static_cast<char>(c - 'A' + 'a');
    else if (c >= '0' && c <= '9') keep = static_cast<char>(c);
    if (!keep) {
      dash = true;
      continue;
    }
    if (dash && !out.empty()) {
      if (out.size() + 1 >= max_slug) break;
      out += '-';
    }
    dash = false;
    if (out.size() >= max_slug) break;
    out += keep;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

/// A 0.1-degree cell, "n37.8-w122.4": rounded to the nearest tenth, the
/// hemispheres as letters (n/s, e/w; zero counts as n and e).
inline std::string grid_cell(double lat, double lon) {
  auto part = [](double v, char pos, char neg) {
    const long tenths = std::lround(v * 10.0);
    const long a = tenths < 0 ? -tenths : tenths;
    return std::string(1, tenths < 0 ? neg : pos) + std::to_string(a / 10) + "." + std::to_string(a % 10);
  };
  return part(lat, 'n', 's') + "-" + part(lon, 'e', 'w');
}

/// The directory for a place: the slug of the area text when it has one,
/// else the grid cell of valid coordinates, else "unknown-place". Never
/// empty, never "." or "..", never holds '/', '\\' or NUL: only [a-z0-9.-],
/// and a '.' only in a grid cell (so an area can never name a cell).
inline std::string place_dir(const std::optional<gps_fix>& fix) {
  if (fix) {
    if (auto s = slug(fix->area); !s.empty()) return s;
    if (valid_coordinates(fix->lat, fix->lon)) return grid_cell(fix->lat, fix->lon);
  }
  return "unknown-place";
}

/// The one file-name scheme: "20261201T051500Z_<tag>_<dataid>.jpg" (UTC,
/// to the second). The tag and data id must already be valid
/// (valid_network_tag, valid_data_id) and the kind an image: otherwise
/// std::invalid_argument.
inline std::string uniform_name(std::chrono::system_clock::time_point when, std::string_view network_tag,
                                std::string_view data_id, image_kind kind) {
  if (!valid_network_tag(network_tag)) throw std::invalid_argument("uniform_name: invalid network tag");
  if (!valid_data_id(data_id)) throw std::invalid_argument("uniform_name: invalid data id");
  if (kind == image_kind::none) throw std::invalid_argument("uniform_name: not an image kind");
  using namespace std::chrono;
  const auto secs = floor<seconds>(when);
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const hh_mm_ss hms{secs - day};
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  std::string name = stamp;
  name += '_';
  name += network_tag;
  name += '_';
  name += data_id;
  name += kind == image_kind::jpeg ? ".jpg" : ".png";
  return name;
}

/// True when p, both taken lexically (lexically_normal, no file system
/// access, no symlinks followed), is strictly below root.
inline bool inside(const std::filesystem::path& root, const std::filesystem::path& p) {
  if (root.empty()) return false;
  auto base = root.lexically_normal();
  if (!base.has_filename() && base.has_relative_path()) base = base.parent_path(); // "/img/" -> "/img"
  const auto rel = p.lexically_normal().lexically_relative(base);
  if (rel.empty() || rel == ".") return false;
  const auto first = *rel.begin();
  return first != ".." && !rel.is_absolute() && !rel.has_root_name();
}

/// root / place_dir(fix) / uniform_name(...). Throws std::invalid_argument as
/// uniform_name does, and std::logic_error should the result ever not be
/// inside root (it cannot, by construction; this is the last line).
inline std::filesystem::path storage_path(const std::filesystem::path& root, const std::optional<gps_fix>& fix,
                                          std::chrono::system_clock::time_point when, std::string_view network_tag,
                                          std::string_view data_id, image_kind kind) {
  auto p = root / place_dir(fix) / uniform_name(when, network_tag, data_id, kind);
  if (!inside(root, p)) throw std::logic_error("storage_path: the path left the image root");
  return p;
}

} // namespace image_worker
