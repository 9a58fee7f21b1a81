#include "format/header.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "format/constants.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace vhdx::format {
namespace {

std::vector<uint8_t> ReadFixture(const std::string& name) {
  std::ifstream in(std::string(VHDX_SAMPLES_DIR) + "/structs/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

Guid G(const char* text) { return *Guid::Parse(text); }

void FixHeaderCrc(std::vector<uint8_t>& b) {
  StoreLE32(b.data() + 4, crc32c::ValueWithZeroedField(b.data(), 4096, 4));
}

Header SampleHeader() {
  Header h;
  h.sequence_number = 0x0123456789ABCDEFull;
  h.file_write_guid = G("11111111-2222-3333-4444-555555555555");
  h.data_write_guid = G("66666666-7777-8888-9999-AAAAAAAAAAAA");
  h.log_guid = G("BBBBBBBB-CCCC-DDDD-EEEE-FFFFFFFFFFFF");
  h.log_version = 0;
  h.version = 1;
  h.log_length = 1 << 20;
  h.log_offset = 1 << 20;
  return h;
}

// ---- File type identifier -------------------------------------------------

TEST(FileIdentifierTest, SampleFixtureDecodes) {
  std::vector<uint8_t> raw = ReadFixture("file_identifier.1");
  ASSERT_EQ(raw.size(), 520u);
  Result<FileIdentifier> id = FileIdentifier::Decode(raw);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->creator, "Microsoft Windows 10.0.19041.0");
}

TEST(FileIdentifierTest, RoundTrip) {
  for (const std::string creator : {"", "QEMU v8.2.0", "d2v", "t\xC3\xABst \xE2\x9C\x93 \xF0\x9D\x84\x9E"}) {
    std::vector<uint8_t> buf(kFileIdentifierSize, 0xEE);
    FileIdentifier{creator}.EncodeTo(buf);
    EXPECT_EQ(std::memcmp(buf.data(), "vhdxfile", 8), 0);
    for (size_t i = 520; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0) << i;  // reserved zero
    Result<FileIdentifier> id = FileIdentifier::Decode(buf);
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(id->creator, creator);
  }
}

TEST(FileIdentifierTest, CreatorTruncatedTo256UnitsWithoutSplittingPairs) {
  std::vector<uint8_t> buf(kFileIdentifierSize);
  FileIdentifier{std::string(300, 'x')}.EncodeTo(buf);
  EXPECT_EQ(FileIdentifier::Decode(buf)->creator, std::string(256, 'x'));

  // 255 ASCII units followed by a surrogate pair: the pair does not fit and
  // must be dropped whole.
  FileIdentifier{std::string(255, 'y') + "\xF0\x9D\x84\x9E"}.EncodeTo(buf);
  EXPECT_EQ(LoadLE16(buf.data() + 8 + 2 * 255), 0);
  EXPECT_EQ(FileIdentifier::Decode(buf)->creator, std::string(255, 'y'));
}

TEST(FileIdentifierTest, InvalidCreatorIsReplacedNotRefused) {
  std::vector<uint8_t> buf(kFileIdentifierSize);
  FileIdentifier{"ab"}.EncodeTo(buf);
  StoreLE16(buf.data() + 8 + 2, 0xD800);  // unpaired high surrogate
  Result<FileIdentifier> id = FileIdentifier::Decode(buf);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->creator, "a\xEF\xBF\xBD");
}

TEST(FileIdentifierTest, RejectsBadSignatureTruncationAndZeros) {
  std::vector<uint8_t> buf(kFileIdentifierSize);
  FileIdentifier{"x"}.EncodeTo(buf);
  std::vector<uint8_t> bad = buf;
  bad[3] = 'X';
  Result<FileIdentifier> r = FileIdentifier::Decode(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.status().message().find("Signature"), std::string::npos);

  EXPECT_FALSE(FileIdentifier::Decode(std::span<const uint8_t>(buf.data(), 519)).ok());
  EXPECT_FALSE(FileIdentifier::Decode({}).ok());
  std::vector<uint8_t> zeros(kFileIdentifierSize, 0);
  EXPECT_FALSE(FileIdentifier::Decode(zeros).ok());
}

// ---- Header ------------------------------------------------------------------

TEST(HeaderTest, SampleFixtureDecodes) {
  std::vector<uint8_t> raw = ReadFixture("image_header.1");
  ASSERT_EQ(raw.size(), 4096u);
  EXPECT_EQ(LoadLE32(raw.data() + 4), 0x9F69B235u);
  EXPECT_EQ(crc32c::ValueWithZeroedField(raw.data(), 4096, 4), 0x9F69B235u);
  Result<Header> h = Header::Decode(raw, kHeader1Offset);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->sequence_number, 6u);
  EXPECT_EQ(h->file_write_guid, G("A3CCCDD4-E8CE-4321-9243-CDAA37D5A0E2"));
  EXPECT_EQ(h->data_write_guid, G("0FFBCD55-1320-498F-9C15-1A97335AAFCD"));
  EXPECT_TRUE(h->log_guid.IsZero());
  EXPECT_EQ(h->log_version, 0);
  EXPECT_EQ(h->version, 1);
  EXPECT_EQ(h->log_length, 0x100000u);
  EXPECT_EQ(h->log_offset, 0x100000u);

  // Re-encoding reproduces the fixture byte for byte (its reserved area is 0).
  std::vector<uint8_t> again(4096, 0xCC);
  h->EncodeTo(again);
  EXPECT_EQ(again, raw);
}

TEST(HeaderTest, RoundTrip) {
  Header h = SampleHeader();
  std::vector<uint8_t> buf(4096, 0xAB);
  h.EncodeTo(buf);
  for (size_t i = 80; i < 4096; ++i) ASSERT_EQ(buf[i], 0) << i;
  Result<Header> d = Header::Decode(buf, kHeader2Offset);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->sequence_number, h.sequence_number);
  EXPECT_EQ(d->file_write_guid, h.file_write_guid);
  EXPECT_EQ(d->data_write_guid, h.data_write_guid);
  EXPECT_EQ(d->log_guid, h.log_guid);
  EXPECT_EQ(d->log_version, h.log_version);
  EXPECT_EQ(d->version, h.version);
  EXPECT_EQ(d->log_length, h.log_length);
  EXPECT_EQ(d->log_offset, h.log_offset);
}

TEST(HeaderTest, FieldValuesAreNotJudgedByTheCodec) {
  // Version, LogVersion and log placement are the opener's business.
  Header h = SampleHeader();
  h.version = 2;
  h.log_version = 7;
  h.log_offset = 12345;
  std::vector<uint8_t> buf(4096);
  h.EncodeTo(buf);
  Result<Header> d = Header::Decode(buf, 0);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->version, 2);
  EXPECT_EQ(d->log_version, 7);
}

TEST(HeaderTest, ReservedBytesAreIgnoredOnRead) {
  std::vector<uint8_t> buf(4096);
  SampleHeader().EncodeTo(buf);
  buf[100] = 0x55;
  FixHeaderCrc(buf);
  EXPECT_TRUE(Header::Decode(buf, 0).ok());
}

TEST(HeaderTest, RejectsBadSignature) {
  std::vector<uint8_t> buf(4096);
  SampleHeader().EncodeTo(buf);
  buf[0] = 'H';
  FixHeaderCrc(buf);
  Result<Header> d = Header::Decode(buf, kHeader1Offset);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), ErrorCode::kCorruption);
  EXPECT_NE(d.status().message().find("Signature"), std::string::npos);
  EXPECT_NE(d.status().message().find("header"), std::string::npos);
}

TEST(HeaderTest, EveryFlippedByteBreaksTheChecksum) {
  std::vector<uint8_t> buf(4096);
  SampleHeader().EncodeTo(buf);
  for (size_t i = 0; i < buf.size(); ++i) {
    std::vector<uint8_t> bad = buf;
    bad[i] ^= 0x01;
    Result<Header> d = Header::Decode(bad, kHeader2Offset);
    ASSERT_FALSE(d.ok()) << "byte " << i;
    EXPECT_EQ(d.status().code(), ErrorCode::kCorruption);
  }
  std::vector<uint8_t> bad = buf;
  bad[2000] ^= 0x80;
  Result<Header> d = Header::Decode(bad, kHeader2Offset);
  EXPECT_NE(d.status().message().find("Checksum"), std::string::npos);
}

TEST(HeaderTest, RejectsTruncatedAndAllZero) {
  std::vector<uint8_t> buf(4096);
  SampleHeader().EncodeTo(buf);
  EXPECT_FALSE(Header::Decode(std::span<const uint8_t>(buf.data(), 4095), 0).ok());
  EXPECT_FALSE(Header::Decode({}, 0).ok());
  std::vector<uint8_t> zeros(4096, 0);
  EXPECT_FALSE(Header::Decode(zeros, 0).ok());
  // All zero except a valid signature: the CRC of that is not zero.
  std::memcpy(zeros.data(), "head", 4);
  EXPECT_FALSE(Header::Decode(zeros, 0).ok());
}

}  // namespace
}  // namespace vhdx::format
