// Builders for ICS protocol PDUs (Modbus/TCP, DNP3 with its CRCs, TPKT/COTP/S7comm, IEC 104,
// EtherNet/IP + CIP) and a recording AnalyzerHost, shared by the analyzer unit tests and the
// fuzz seed generator. The DNP3 CRC here is computed bit by bit, independently of the
// table-driven one in the analyzer.
#pragma once

#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::test {

inline void ics_put_le16(Bytes& b, std::uint16_t v) {
    b.push_back(static_cast<std::uint8_t>(v));
    b.push_back(static_cast<std::uint8_t>(v >> 8));
}

// Modbus/TCP ADU: MBAP (transaction, protocol 0, length, unit) + function + body.
inline Bytes modbus_adu(std::uint16_t tid, std::uint8_t unit, std::uint8_t fc, const Bytes& body) {
    Bytes b;
    put16(b, tid);
    put16(b, 0);
    put16(b, static_cast<std::uint16_t>(2 + body.size()));
    put8(b, unit);
    put8(b, fc);
    append(b, body);
    return b;
}

inline std::uint16_t dnp3_crc(const std::uint8_t* p, std::size_t n) {
    std::uint16_t crc = 0;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA6BC)
                            : static_cast<std::uint16_t>(crc >> 1);
        }
    }
    return static_cast<std::uint16_t>(~crc);
}

// One DNP3 link frame carrying USER (transport header + application bytes), CRCs included.
inline Bytes dnp3_frame(std::uint16_t dest, std::uint16_t src, const Bytes& user,
                        std::uint8_t control = 0xC4) {
    Bytes b = {0x05, 0x64, static_cast<std::uint8_t>(5 + user.size()), control};
    ics_put_le16(b, dest);
    ics_put_le16(b, src);
    ics_put_le16(b, dnp3_crc(b.data(), 8));
    for (std::size_t at = 0; at < user.size(); at += 16) {
        const std::size_t n = std::min<std::size_t>(16, user.size() - at);
        Bytes block(user.begin() + static_cast<std::ptrdiff_t>(at),
                    user.begin() + static_cast<std::ptrdiff_t>(at + n));
        append(b, block);
        ics_put_le16(b, dnp3_crc(block.data(), block.size()));
    }
    return b;
}

// A single-segment DNP3 application fragment: transport FIR|FIN, app control, function, body.
inline Bytes dnp3_request(std::uint8_t fc, const Bytes& objects, std::uint8_t seq = 0) {
    Bytes user = {static_cast<std::uint8_t>(0xC0 | seq), static_cast<std::uint8_t>(0xC0 | seq), fc};
    append(user, objects);
    return dnp3_frame(10, 1, user);
}

inline Bytes tpkt_cotp_dt(const Bytes& s7) {
    Bytes b = {0x03, 0x00};
    put16(b, static_cast<std::uint16_t>(4 + 3 + s7.size()));
    append(b, Bytes{0x02, 0xF0, 0x80});
    append(b, s7);
    return b;
}

inline Bytes cotp_cr() {
    Bytes b = {0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00,
               0xC1, 0x02, 0x01, 0x00, 0xC2, 0x02, 0x01, 0x02, 0xC0, 0x01, 0x0A};
    return b;
}

// S7comm job with PARAM (and no data).
inline Bytes s7_job(const Bytes& param, std::uint16_t pdu_ref = 1) {
    Bytes b = {0x32, 0x01, 0x00, 0x00};
    put16(b, pdu_ref);
    put16(b, static_cast<std::uint16_t>(param.size()));
    put16(b, 0);
    append(b, param);
    return b;
}

inline Bytes s7_plc_stop() {
    Bytes p = {0x29, 0, 0, 0, 0, 0, 0x09};
    append(p, text("P_PROGRAM"));
    return p;
}

inline Bytes s7_download_block(std::string_view file) {
    Bytes p = {0x1B, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
               static_cast<std::uint8_t>(file.size())};
    append(p, text(file));
    return p;
}

// IEC 104 I frame with one information object of VALUE bytes after its 3-byte address.
inline Bytes iec104_i(std::uint8_t type, std::uint8_t cause, std::uint16_t common_address,
                      std::uint32_t ioa, const Bytes& value) {
    Bytes asdu = {type, 0x01, cause, 0x00};
    ics_put_le16(asdu, common_address);
    asdu.push_back(static_cast<std::uint8_t>(ioa));
    asdu.push_back(static_cast<std::uint8_t>(ioa >> 8));
    asdu.push_back(static_cast<std::uint8_t>(ioa >> 16));
    append(asdu, value);
    Bytes b = {0x68, static_cast<std::uint8_t>(4 + asdu.size()), 0x00, 0x00, 0x00, 0x00};
    append(b, asdu);
    return b;
}

inline Bytes iec104_u(std::uint8_t function) { return {0x68, 0x04, function, 0, 0, 0}; }

// EtherNet/IP encapsulation.
inline Bytes enip(std::uint16_t command, std::uint32_t session, const Bytes& data) {
    Bytes b;
    ics_put_le16(b, command);
    ics_put_le16(b, static_cast<std::uint16_t>(data.size()));
    put_le32(b, session);
    put_le32(b, 0);
    for (int i = 0; i < 8; ++i) b.push_back(0);
    put_le32(b, 0);
    append(b, data);
    return b;
}

// SendRRData with one unconnected data item holding CIP.
inline Bytes enip_rr(std::uint32_t session, const Bytes& cip) {
    Bytes d;
    put_le32(d, 0);
    ics_put_le16(d, 0);
    ics_put_le16(d, 2);
    ics_put_le16(d, 0x0000);
    ics_put_le16(d, 0);
    ics_put_le16(d, 0x00B2);
    ics_put_le16(d, static_cast<std::uint16_t>(cip.size()));
    append(d, cip);
    return enip(0x006F, session, d);
}

inline Bytes cip_request(std::uint8_t service, std::uint8_t cls, std::uint8_t instance,
                         const Bytes& body = {}) {
    Bytes b = {service, 0x02, 0x20, cls, 0x24, instance};
    append(b, body);
    return b;
}

// Records everything an analyzer reports.
class IcsRecordingHost final : public agent::AnalyzerHost {
public:
    void record(std::string_view log, const agent::RecordFields& fields) override {
        records.emplace_back(std::string(log), std::string(fields.json()));
    }
    void observe(agent::IntelType, std::string_view, std::string_view) override {}
    void event(const agent::ProtocolEvent& e) override { events.push_back(e); }
    void weird(std::string_view name, std::string_view) override { weirds.emplace_back(name); }

    std::vector<std::pair<std::string, std::string>> records;
    std::vector<agent::ProtocolEvent> events;
    std::vector<std::string> weirds;
};

}  // namespace senningen::test
