// image-worker: test images made by code, for the tests, the fuzz seeds and
// the demo (no image files are fetched or checked in). make_jpeg encodes a
// small RGB picture with libjpeg, in memory, with an EXIF APP1 segment built
// with libexif right after SOI; make_png writes a PNG with zlib. The GPS tags
// written can be anything, including out-of-range values, zero denominators
// and hostile area text: see gps_tags.
#pragma once

#include "image.hpp" // gps_fix

// jpeglib.h wants FILE and size_t declared first.
#include <cstddef>
#include <cstdio>
#include <jpeglib.h>
#include <libexif/exif-content.h>
#include <libexif/exif-data.h>
#include <libexif/exif-entry.h>
#include <libexif/exif-mem.h>
#include <libexif/exif-utils.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace image_worker {

/// An EXIF RATIONAL.
struct rational {
  std::uint32_t num = 0, den = 1;
};

/// What goes into the GPS IFD, tag by tag; a field left empty is not
/// written. Nothing is checked: this is how the tests write bad data.
struct gps_tags {
  ExifByteOrder order = EXIF_BYTE_ORDER_INTEL;
  std::optional<std::array<rational, 3>> lat, lon; ///< degrees, minutes, seconds
  std::optional<std::string> lat_ref, lon_ref;     ///< "N"/"S", "E"/"W" (written as ASCII with its NUL)
  std::optional<rational> alt;
  std::optional<std::uint8_t> alt_ref;             ///< 0 above, 1 below sea level
  std::optional<std::string> area;                 ///< GPSAreaInformation text, any bytes
  std::string area_code = std::string("ASCII\0\0\0", 8); ///< its 8-byte character code
};

/// Degrees as EXIF writes them: whole degrees, whole minutes, and seconds in
/// millionths (about 3e-10 degrees). For finite values of |v| < 2^32.
inline std::array<rational, 3> dms(double v) {
  const double a = std::fabs(v);
  const double d = std::floor(a);
  const double mins = (a - d) * 60.0;
  const double m = std::floor(mins);
  const double s = (mins - m) * 60.0;
  return {rational{static_cast<std::uint32_t>(d), 1}, rational{static_cast<std::uint32_t>(m), 1},
          rational{static_cast<std::uint32_t>(std::llround(s * 1e6)), 1000000}};
}

/// The tags for a fix, as a camera would write them (altitude in
/// millimetres, the area with the ASCII character code).
inline gps_tags gps_tags_for(const gps_fix& f) {
  gps_tags t;
  t.lat = dms(f.lat);
  t.lat_ref = f.lat < 0 ? "S" : "N";
  t.lon = dms(f.lon);
  t.lon_ref = f.lon < 0 ? "W" : "E";
  if (f.alt) {
    t.alt = rational{static_cast<std::uint32_t>(std::llround(std::fabs(*f.alt) * 1000.0)), 1000};
    t.alt_ref = *f.alt < 0 ? 1 : 0;
  }
  if (!f.area.empty()) t.area = f.area;
  return t;
}

namespace detail {

/// Adds an entry, allocated by hand (exif_entry_initialize does not know the
/// GPS tags, whose numbers it takes for IFD 0 / interoperability tags).
inline void add_gps_entry(ExifData* ed, int tag, ExifFormat format, unsigned long components,
                          const unsigned char* bytes, std::size_t size) {
  ExifMem* mem = exif_mem_new_default();
  if (!mem) throw std::bad_alloc();
  ExifEntry* e = exif_entry_new_mem(mem);
  if (!e) {
    exif_mem_unref(mem);
    throw std::bad_alloc();
  }
  e->data = size ? static_cast<unsigned char*>(exif_mem_alloc(mem, static_cast<ExifLong>(size))) : nullptr;
  if (size && !e->data) {
    exif_entry_unref(e);
    exif_mem_unref(mem);
    throw std::bad_alloc();
  }
  if (size) std::memcpy(e->data, bytes, size);
  e->size = static_cast<unsigned int>(size);
  e->tag = static_cast<ExifTag>(tag);
  e->format = format;
  e->components = components;
  exif_content_add_entry(ed->ifd[EXIF_IFD_GPS], e); // takes a reference
  exif_entry_unref(e);
  exif_mem_unref(mem);
}

inline void add_rationals(ExifData* ed, ExifByteOrder order, int tag, const rational* r, std::size_t n) {
  std::vector<unsigned char> buf(8 * n);
  for (std::size_t i = 0; i < n; ++i) exif_set_rational(buf.data() + 8 * i, order, ExifRational{r[i].num, r[i].den});
  add_gps_entry(ed, tag, EXIF_FORMAT_RATIONAL, n, buf.data(), buf.size());
}

inline void add_ascii(ExifData* ed, int tag, const std::string& s) {
  std::string z = s + '\0';
  add_gps_entry(ed, tag, EXIF_FORMAT_ASCII, z.size(), reinterpret_cast<const unsigned char*>(z.data()), z.size());
}

struct jpeg_error {
  jpeg_error_mgr pub;
  std::jmp_buf back;
};

[[noreturn]] inline void jpeg_error_exit(j_common_ptr c) { std::longjmp(reinterpret_cast<jpeg_error*>(c->err)->back, 1); }
inline void jpeg_no_output(j_common_ptr) {}

/// libjpeg in memory. Only trivially destructible locals: a libjpeg error
/// longjmps back here. The buffer in *out is malloc'd (free it), also on
/// failure.
inline bool encode_jpeg(const unsigned char* rgb, int w, int h, const unsigned char* app1, unsigned app1_len,
                        unsigned char** out, unsigned long* out_size) {
  jpeg_compress_struct c;
  jpeg_error err;
  c.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_error_exit;
  err.pub.output_message = jpeg_no_output;
  if (setjmp(err.back)) {
    jpeg_destroy_compress(&c);
    return false;
  }
  jpeg_create_compress(&c);
  jpeg_mem_dest(&c, out, out_size);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 85, TRUE);
  c.write_JFIF_header = app1 ? FALSE : TRUE; // with EXIF, APP1 comes right after SOI
  jpeg_start_compress(&c, TRUE);
  if (app1) jpeg_write_marker(&c, JPEG_APP0 + 1, app1, app1_len);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(rgb + static_cast<std::size_t>(c.next_scanline) * 3 * static_cast<std::size_t>(w));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  return true;
}

inline void check_size(int w, int h) {
  if (w < 1 || h < 1 || w > 4096 || h > 4096) throw std::invalid_argument("test image size must be 1..4096");
}

} // namespace detail

/// The APP1 payload ("Exif\0\0" and the TIFF structure) holding these GPS
/// tags (and nothing else but the IFD 0 that points to them).
inline std::string exif_app1(const gps_tags& t) {
  ExifData* ed = exif_data_new();
  if (!ed) throw std::bad_alloc();
  unsigned char* buf = nullptr;
  unsigned int size = 0;
  try {
    exif_data_set_byte_order(ed, t.order);
    exif_data_set_data_type(ed, EXIF_DATA_TYPE_COMPRESSED);
    const unsigned char version[4] = {2, 3, 0, 0};
    detail::add_gps_entry(ed, EXIF_TAG_GPS_VERSION_ID, EXIF_FORMAT_BYTE, 4, version, 4);
    if (t.lat_ref) detail::add_ascii(ed, EXIF_TAG_GPS_LATITUDE_REF, *t.lat_ref);
    if (t.lat) detail::add_rationals(ed, t.order, EXIF_TAG_GPS_LATITUDE, t.lat->data(), 3);
    if (t.lon_ref) detail::add_ascii(ed, EXIF_TAG_GPS_LONGITUDE_REF, *t.lon_ref);
    if (t.lon) detail::add_rationals(ed, t.order, EXIF_TAG_GPS_LONGITUDE, t.lon->data(), 3);
    if (t.alt_ref) detail::add_gps_entry(ed, EXIF_TAG_GPS_ALTITUDE_REF, EXIF_FORMAT_BYTE, 1, &*t.alt_ref, 1);
    if (t.alt) detail::add_rationals(ed, t.order, EXIF_TAG_GPS_ALTITUDE, &*t.alt, 1);
    if (t.area) {
      std::string v = t.area_code + *t.area;
      detail::add_gps_entry(ed, EXIF_TAG_GPS_AREA_INFORMATION, EXIF_FORMAT_UNDEFINED, v.size(),
                            reinterpret_cast<const unsigned char*>(v.data()), v.size());
    }
    exif_data_save_data(ed, &buf, &size);
  } catch (...) {
    exif_data_unref(ed);
    throw;
  }
  exif_data_unref(ed);
  if (!buf || size == 0) {
    std::free(buf);
    throw std::runtime_error("exif_app1: libexif saved nothing");
  }
  std::string out(reinterpret_cast<const char*>(buf), size);
  std::free(buf); // libexif's default allocator is calloc/free
  if (out.size() > 65533) throw std::invalid_argument("exif_app1: over the 64 KiB of one APP1 segment");
  return out;
}

/// A w x h RGB JPEG of one shade (with a faint gradient), with the given
/// APP1 payload right after SOI (and then no JFIF APP0), or none.
inline std::string make_jpeg_with_app1(int w, int h, std::optional<std::string> app1, std::uint8_t shade = 128) {
  detail::check_size(w, h);
  if (app1 && app1->size() > 65533) throw std::invalid_argument("make_jpeg: APP1 payload over 65533 bytes");
  std::vector<unsigned char> rgb(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      unsigned char* p = &rgb[(static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x)) * 3];
      p[0] = shade;
      p[1] = static_cast<unsigned char>(shade + x * 4);
      p[2] = static_cast<unsigned char>(shade + y * 4);
    }
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const bool ok = detail::encode_jpeg(rgb.data(), w, h, app1 ? reinterpret_cast<const unsigned char*>(app1->data()) : nullptr,
                                      app1 ? static_cast<unsigned>(app1->size()) : 0, &out, &size);
  std::string jpeg;
  if (ok && out) jpeg.assign(reinterpret_cast<const char*>(out), size);
  std::free(out);
  if (!ok) throw std::runtime_error("make_jpeg: libjpeg failed");
  return jpeg;
}

/// A JPEG with these GPS tags in its EXIF.
inline std::string make_jpeg_tags(int w, int h, const gps_tags& t, std::uint8_t shade = 128) {
  return make_jpeg_with_app1(w, h, exif_app1(t), shade);
}

/// A w x h JPEG; with a fix, its EXIF GPS data holds it (latitude,
/// longitude, altitude when set, area text when not empty).
inline std::string make_jpeg(int w, int h, std::optional<gps_fix> gps, std::uint8_t shade) {
  if (!gps) return make_jpeg_with_app1(w, h, std::nullopt, shade);
  return make_jpeg_tags(w, h, gps_tags_for(*gps), shade);
}

namespace detail {

inline void png_chunk(std::string& out, const char* type, const std::string& data) {
  auto be = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((v >> s) & 0xFF);
  };
  be(static_cast<std::uint32_t>(data.size()));
  std::string td = std::string(type, 4) + data;
  out += td;
  be(static_cast<std::uint32_t>(::crc32(0L, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()))));
}

} // namespace detail

/// A w x h 8-bit RGB PNG (IHDR, one zlib-compressed IDAT, IEND).
inline std::string make_png(int w, int h, std::uint8_t shade = 128) {
  detail::check_size(w, h);
  std::string raw;
  raw.reserve(static_cast<std::size_t>(h) * (1 + 3 * static_cast<std::size_t>(w)));
  for (int y = 0; y < h; ++y) {
    raw += '\0'; // filter: none
    for (int x = 0; x < w; ++x) {
      raw += static_cast<char>(shade);
      raw += static_cast<char>(static_cast<std::uint8_t>(shade + x * 4));
      raw += static_cast<char>(static_cast<std::uint8_t>(shade + y * 4));
    }
  }
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::string z(zlen, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), 9) != Z_OK)
    throw std::runtime_error("make_png: zlib failed");
  z.resize(zlen);
  std::string ihdr;
  for (std::uint32_t v : {static_cast<std::uint32_t>(w), static_cast<std::uint32_t>(h)})
    for (int s = 24; s >= 0; s -= 8) ihdr += static_cast<char>((v >> s) & 0xFF);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5); // depth 8, RGB, deflate, adaptive, no interlace
  std::string png(detail::png_signature);
  detail::png_chunk(png, "IHDR", ihdr);
  detail::png_chunk(png, "IDAT", z);
  detail::png_chunk(png, "IEND", "");
  return png;
}

} // namespace image_worker
