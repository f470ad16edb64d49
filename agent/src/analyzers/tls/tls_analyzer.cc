#include "analyzers/tls/tls_analyzer.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>


#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string_view>
#include <unordered_map>

namespace senningen::agent {

namespace {

constexpr std::size_t kMaxRecord = 16384 + 2048;    // TLSCiphertext bound (RFC 8446 5.2)
constexpr std::size_t kMaxHandshake = 256 * 1024;   // a long certificate chain fits
constexpr std::size_t kMaxCertificates = 16;

constexpr std::uint8_t kChangeCipherSpec = 20;
constexpr std::uint8_t kAlert = 21;
constexpr std::uint8_t kHandshake = 22;
constexpr std::uint8_t kApplicationData = 23;

constexpr std::uint8_t kClientHello = 1;
constexpr std::uint8_t kServerHello = 2;
constexpr std::uint8_t kCertificate = 11;

std::uint16_t be16(const std::uint8_t* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
std::size_t be24(const std::uint8_t* p) {
    return (std::size_t{p[0]} << 16) | (std::size_t{p[1]} << 8) | p[2];
}

// RFC 8701: 0x?A?A with both bytes equal.
bool is_grease(std::uint16_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

std::string hex(const unsigned char* data, std::size_t len) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < len; ++i) {
        out.push_back(kDigits[data[i] >> 4]);
        out.push_back(kDigits[data[i] & 15]);
    }
    return out;
}

std::string digest_hex(const EVP_MD* md, std::span<const std::uint8_t> data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) return {};
    return hex(out, len);
}

std::string version_name(std::uint16_t v) {
    switch (v) {
        case 0x0300: return "SSLv3";
        case 0x0301: return "TLSv10";
        case 0x0302: return "TLSv11";
        case 0x0303: return "TLSv12";
        case 0x0304: return "TLSv13";
        default: {
            char buf[16];
            std::snprintf(buf, sizeof buf, "0x%04x", v);
            return buf;
        }
    }
}

// A bounds-checked reader over a handshake message.
class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> data) : data_(data) {}
    bool u8(std::uint8_t& v) {
        if (pos_ + 1 > data_.size()) return false;
        v = data_[pos_++];
        return true;
    }
    bool u16(std::uint16_t& v) {
        if (pos_ + 2 > data_.size()) return false;
        v = be16(data_.data() + pos_);
        pos_ += 2;
        return true;
    }
    bool bytes(std::size_t n, std::span<const std::uint8_t>& out) {
        if (n > data_.size() - pos_) return false;
        out = data_.subspan(pos_, n);
        pos_ += n;
        return true;
    }
    bool skip(std::size_t n) {
        std::span<const std::uint8_t> ignored;
        return bytes(n, ignored);
    }
    bool done() const { return pos_ == data_.size(); }

private:
    std::span<const std::uint8_t> data_;
    std::size_t pos_ = 0;
};

struct ClientHelloFacts {
    std::string sni;
    std::string ja3;
};

// ClientHello: version, random, session id, ciphers, compression, extensions.
bool parse_client_hello(std::span<const std::uint8_t> body, ClientHelloFacts& out) {
    Reader r(body);
    std::uint16_t version = 0;
    std::uint8_t sid_len = 0;
    std::uint16_t ciphers_len = 0;
    std::uint8_t comp_len = 0;
    std::span<const std::uint8_t> ciphers;
    if (!r.u16(version) || !r.skip(32) || !r.u8(sid_len) || !r.skip(sid_len) ||
        !r.u16(ciphers_len) || (ciphers_len & 1) != 0 || !r.bytes(ciphers_len, ciphers) ||
        !r.u8(comp_len) || !r.skip(comp_len)) {
        return false;
    }
    std::string cipher_list;
    for (std::size_t i = 0; i + 1 < ciphers.size(); i += 2) {
        const std::uint16_t c = be16(ciphers.data() + i);
        if (is_grease(c)) continue;
        if (!cipher_list.empty()) cipher_list.push_back('-');
        cipher_list += std::to_string(c);
    }
    std::string ext_list;
    std::string groups;
    std::string formats;
    std::uint16_t ext_total = 0;
    if (!r.done()) {
        std::span<const std::uint8_t> exts;
        if (!r.u16(ext_total) || !r.bytes(ext_total, exts)) return false;
        Reader e(exts);
        while (!e.done()) {
            std::uint16_t type = 0;
            std::uint16_t len = 0;
            std::span<const std::uint8_t> ext;
            if (!e.u16(type) || !e.u16(len) || !e.bytes(len, ext)) return false;
            if (is_grease(type)) continue;
            if (!ext_list.empty()) ext_list.push_back('-');
            ext_list += std::to_string(type);
            Reader x(ext);
            if (type == 0) {  // server_name: a list of (type, name)
                std::uint16_t list_len = 0;
                std::span<const std::uint8_t> list;
                if (!x.u16(list_len) || !x.bytes(list_len, list)) return false;
                Reader l(list);
                while (!l.done()) {
                    std::uint8_t name_type = 0;
                    std::uint16_t name_len = 0;
                    std::span<const std::uint8_t> name;
                    if (!l.u8(name_type) || !l.u16(name_len) || !l.bytes(name_len, name)) {
                        return false;
                    }
                    if (name_type == 0 && out.sni.empty()) {
                        out.sni.assign(reinterpret_cast<const char*>(name.data()), name.size());
                    }
                }
            } else if (type == 10) {  // supported_groups
                std::uint16_t list_len = 0;
                std::span<const std::uint8_t> list;
                if (!x.u16(list_len) || !x.bytes(list_len, list)) return false;
                for (std::size_t i = 0; i + 1 < list.size(); i += 2) {
                    const std::uint16_t g = be16(list.data() + i);
                    if (is_grease(g)) continue;
                    if (!groups.empty()) groups.push_back('-');
                    groups += std::to_string(g);
                }
            } else if (type == 11) {  // ec_point_formats
                std::uint8_t list_len = 0;
                std::span<const std::uint8_t> list;
                if (!x.u8(list_len) || !x.bytes(list_len, list)) return false;
                for (const std::uint8_t f : list) {
                    if (!formats.empty()) formats.push_back('-');
                    formats += std::to_string(f);
                }
            }
        }
    }
    out.ja3 = std::to_string(version) + "," + cipher_list + "," + ext_list + "," + groups + "," +
              formats;
    return true;
}

struct ServerHelloFacts {
    std::uint16_t version = 0;
    std::uint16_t cipher = 0;
    std::string ja3s;
};

bool parse_server_hello(std::span<const std::uint8_t> body, ServerHelloFacts& out) {
    Reader r(body);
    std::uint16_t version = 0;
    std::uint8_t sid_len = 0;
    std::uint8_t compression = 0;
    if (!r.u16(version) || !r.skip(32) || !r.u8(sid_len) || !r.skip(sid_len) ||
        !r.u16(out.cipher) || !r.u8(compression)) {
        return false;
    }
    out.version = version;
    std::string ext_list;
    if (!r.done()) {
        std::uint16_t ext_total = 0;
        std::span<const std::uint8_t> exts;
        if (!r.u16(ext_total) || !r.bytes(ext_total, exts)) return false;
        Reader e(exts);
        while (!e.done()) {
            std::uint16_t type = 0;
            std::uint16_t len = 0;
            std::span<const std::uint8_t> ext;
            if (!e.u16(type) || !e.u16(len) || !e.bytes(len, ext)) return false;
            if (!ext_list.empty()) ext_list.push_back('-');
            ext_list += std::to_string(type);
            if (type == 43 && ext.size() == 2) out.version = be16(ext.data());  // TLS 1.3
        }
    }
    out.ja3s = std::to_string(version) + "," + std::to_string(out.cipher) + "," + ext_list;
    return true;
}

struct X509Deleter {
    void operator()(X509* x) const { X509_free(x); }
};
struct GeneralNamesDeleter {
    void operator()(GENERAL_NAMES* n) const { GENERAL_NAMES_free(n); }
};
struct BioDeleter {
    void operator()(BIO* b) const { BIO_free(b); }
};

std::string name_text(const X509_NAME* name) {
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
    if (!bio || name == nullptr) return {};
    // RFC 2253 (most specific first, comma separated), as Zeek's x509.log prints names.
    if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        return {};
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

std::string asn1_text(const ASN1_STRING* s) {
    if (s == nullptr) return {};
    const unsigned char* data = ASN1_STRING_get0_data(s);
    const int len = ASN1_STRING_length(s);
    return len > 0 ? std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(len))
                   : std::string();
}

}  // namespace

bool parse_certificate(std::span<const std::uint8_t> der, CertificateFacts& out) {
    const unsigned char* p = der.data();
    std::unique_ptr<X509, X509Deleter> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert) return false;
    out.sha1 = digest_hex(EVP_sha1(), der);
    out.sha256 = digest_hex(EVP_sha256(), der);
    const X509_NAME* subject = X509_get_subject_name(cert.get());
    out.subject = name_text(subject);
    out.issuer = name_text(X509_get_issuer_name(cert.get()));
    const int cn = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (cn >= 0) {
        out.common_name =
            asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, cn)));
    }
    const int email = X509_NAME_get_index_by_NID(subject, NID_pkcs9_emailAddress, -1);
    if (email >= 0) {
        out.subject_email =
            asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, email)));
    }
    std::unique_ptr<GENERAL_NAMES, GeneralNamesDeleter> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
            const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans.get(), i);
            if (n->type == GEN_DNS) out.san_dns.push_back(asn1_text(n->d.dNSName));
            if (n->type == GEN_EMAIL) out.san_email.push_back(asn1_text(n->d.rfc822Name));
        }
    }
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
    if (serial != nullptr) {
        std::string s = hex(serial->data, static_cast<std::size_t>(serial->length));
        for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        out.serial = s;
    }
    return true;
}

std::string ja3_string(std::span<const std::uint8_t> client_hello) {
    ClientHelloFacts facts;
    return parse_client_hello(client_hello, facts) ? facts.ja3 : std::string();
}

namespace {

// Servers hand every client the same chain, and d2i_X509 (with OpenSSL 3's decoder lookup for
// the public key) costs far more than the rest of a handshake: parsed certificates are kept
// per thread (one engine per worker), keyed by their whole DER, as Zeek's X509 cache does.
// Bounded: when full it starts again empty, so a stream of distinct certificates costs no
// more than without it.
constexpr std::size_t kCertCacheEntries = 256;
constexpr std::size_t kMaxCachedDer = 16 * 1024;

bool parse_certificate_cached(std::span<const std::uint8_t> der, CertificateFacts& out) {
    struct DerHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view der) const {
            return std::hash<std::string_view>{}(der);
        }
    };
    thread_local std::unordered_map<std::string, CertificateFacts, DerHash, std::equal_to<>> cache;
    const std::string_view key(reinterpret_cast<const char*>(der.data()), der.size());
    if (der.size() > kMaxCachedDer) return parse_certificate(der, out);
    if (const auto it = cache.find(key); it != cache.end()) {
        out = it->second;
        return true;
    }
    if (!parse_certificate(der, out)) return false;
    if (cache.size() >= kCertCacheEntries) cache.clear();
    cache.emplace(std::string(key), out);
    return true;
}

class TlsAnalyzer final : public Analyzer {
public:
    void data(const AnalyzerContext& ctx, std::span<const std::uint8_t> bytes) override {
        Direction& d = dirs_[ctx.direction & 1];
        while (!bytes.empty() && !d.done) {
            // Record header and body, buffered only when split across deliveries.
            std::span<const std::uint8_t> record;
            if (d.record.empty() && bytes.size() >= 5 &&
                bytes.size() >= 5 + std::size_t{be16(bytes.data() + 3)}) {
                const std::size_t len = 5 + be16(bytes.data() + 3);
                record = bytes.first(len);
                bytes = bytes.subspan(len);
            } else {
                const std::size_t want =
                    d.record.size() < 5 ? 5 : 5 + std::size_t{be16(d.record.data() + 3)};
                const std::size_t n = std::min(want - d.record.size(), bytes.size());
                d.record.insert(d.record.end(), bytes.begin(),
                                bytes.begin() + static_cast<std::ptrdiff_t>(n));
                bytes = bytes.subspan(n);
                if (d.record.size() < 5) continue;
                const std::size_t full = 5 + std::size_t{be16(d.record.data() + 3)};
                if (d.record.size() < full) continue;
                record_copy_ = std::move(d.record);
                d.record.clear();
                record = record_copy_;
            }
            on_record(ctx, d, record);
        }
        // A direction that is done (encrypted or unparseable) reads nothing more: its buffers
        // go, so that an established connection holds no record bytes for the rest of its life.
        if (d.done) {
            std::vector<std::uint8_t>().swap(d.record);
            std::vector<std::uint8_t>().swap(d.handshake);
            if (dirs_[0].done && dirs_[1].done) std::vector<std::uint8_t>().swap(record_copy_);
        }
    }

    void gap(const AnalyzerContext& ctx, std::uint64_t /*bytes*/) override {
        dirs_[ctx.direction & 1].done = true;
        ctx.host.weird("tls_gap", "hole in a TLS stream; the direction is no longer parsed");
    }

    void end(const AnalyzerContext& ctx) override {
        if (!logged_) emit(ctx);
    }

private:
    struct Direction {
        std::vector<std::uint8_t> record;     // a record split across deliveries
        std::vector<std::uint8_t> handshake;  // handshake bytes across records
        bool done = false;                    // encrypted from here on, or unparseable
    };

    void on_record(const AnalyzerContext& ctx, Direction& d, std::span<const std::uint8_t> rec) {
        const std::uint8_t type = rec[0];
        const std::uint16_t version = be16(rec.data() + 1);
        if ((version >> 8) != 3 || rec.size() - 5 > kMaxRecord) {
            ctx.host.weird("tls_bad_record", "record header is not TLS");
            d.done = true;
            return;
        }
        const auto body = rec.subspan(5);
        switch (type) {
            case kHandshake: {
                if (d.handshake.size() + body.size() > kMaxHandshake) {
                    ctx.host.weird("tls_handshake_too_large", "handshake over 256 KiB");
                    d.done = true;
                    return;
                }
                d.handshake.insert(d.handshake.end(), body.begin(), body.end());
                std::size_t pos = 0;
                while (d.handshake.size() - pos >= 4) {
                    const std::size_t len = be24(d.handshake.data() + pos + 1);
                    if (d.handshake.size() - pos - 4 < len) break;
                    const std::uint8_t msg_type = d.handshake[pos];
                    const auto msg = std::span<const std::uint8_t>(d.handshake).subspan(pos + 4, len);
                    on_handshake(ctx, msg_type, msg);
                    pos += 4 + len;
                    if (d.done) break;
                }
                d.handshake.erase(d.handshake.begin(),
                                  d.handshake.begin() + static_cast<std::ptrdiff_t>(pos));
                break;
            }
            case kChangeCipherSpec:
                // What follows in this direction is encrypted (TLS <= 1.2; in 1.3 the
                // ServerHello already ended the clear text).
                d.done = true;
                ccs_seen_[ctx.direction & 1] = true;
                if (ccs_seen_[0] && ccs_seen_[1]) established_ = true;
                break;
            case kApplicationData:
                d.done = true;
                established_ = established_ || server_.version == 0x0304;
                if (ctx.direction == 1 || server_.version == 0x0304) maybe_emit(ctx);
                break;
            case kAlert: break;
            default:
                ctx.host.weird("tls_unknown_record_type", std::to_string(type));
                d.done = true;
                break;
        }
        if (dirs_[0].done && dirs_[1].done) maybe_emit(ctx);
    }

    void on_handshake(const AnalyzerContext& ctx, std::uint8_t type,
                      std::span<const std::uint8_t> msg) {
        switch (type) {
            case kClientHello: {
                ClientHelloFacts facts;
                if (!parse_client_hello(msg, facts)) {
                    ctx.host.weird("tls_bad_client_hello", "ClientHello does not parse");
                    return;
                }
                client_ = std::move(facts);
                client_seen_ = true;
                if (!client_.sni.empty()) {
                    ctx.host.observe(IntelType::kDomain, client_.sni, "SSL::IN_SERVER_NAME");
                }
                break;
            }
            case kServerHello: {
                if (!parse_server_hello(msg, server_)) {
                    ctx.host.weird("tls_bad_server_hello", "ServerHello does not parse");
                    return;
                }
                server_seen_ = true;
                // In TLS 1.3 everything after the ServerHello is encrypted.
                if (server_.version == 0x0304) dirs_[1].done = true;
                break;
            }
            case kCertificate: {
                if (ctx.direction != 1 || !certs_.empty()) return;  // the server's chain only
                Reader r(msg);
                std::span<const std::uint8_t> list;
                std::uint8_t a = 0, b = 0, c = 0;
                if (!r.u8(a) || !r.u8(b) || !r.u8(c)) {
                    ctx.host.weird("tls_bad_certificate", "Certificate message too short");
                    return;
                }
                const std::size_t total = (std::size_t{a} << 16) | (std::size_t{b} << 8) | c;
                if (!r.bytes(total, list)) {
                    ctx.host.weird("tls_bad_certificate", "certificate list overruns message");
                    return;
                }
                std::size_t pos = 0;
                while (pos + 3 <= list.size() && certs_.size() < kMaxCertificates) {
                    const std::size_t len = be24(list.data() + pos);
                    if (len > list.size() - pos - 3) {
                        ctx.host.weird("tls_bad_certificate", "certificate overruns the list");
                        break;
                    }
                    CertificateFacts cert;
                    if (parse_certificate_cached(list.subspan(pos + 3, len), cert)) {
                        ctx.host.observe(IntelType::kCertHash, cert.sha1, "X509::IN_CERT");
                        for (const auto& dns : cert.san_dns) {
                            ctx.host.observe(IntelType::kDomain, dns, "X509::IN_CERT");
                        }
                        for (const auto& mail : cert.san_email) {
                            ctx.host.observe(IntelType::kEmail, mail, "X509::IN_CERT");
                        }
                        if (!cert.subject_email.empty() &&
                            std::find(cert.san_email.begin(), cert.san_email.end(),
                                      cert.subject_email) == cert.san_email.end()) {
                            ctx.host.observe(IntelType::kEmail, cert.subject_email,
                                             "X509::IN_CERT");
                        }
                        certs_.push_back(std::move(cert));
                    } else {
                        ctx.host.weird("tls_bad_certificate", "OpenSSL cannot parse a certificate");
                    }
                    pos += 3 + len;
                }
                break;
            }
            default: break;
        }
    }

    void maybe_emit(const AnalyzerContext& ctx) {
        if (!logged_ && (client_seen_ || server_seen_)) emit(ctx);
    }

    void emit(const AnalyzerContext& ctx) {
        logged_ = true;
        if (!client_seen_ && !server_seen_) return;
        RecordFields r;
        if (server_seen_) {
            r.set("version", version_name(server_.version));
            char cipher[8];
            std::snprintf(cipher, sizeof cipher, "0x%04x", server_.cipher);
            r.set("cipher", std::string(cipher));
        }
        if (!client_.sni.empty()) r.set("sni", client_.sni);
        if (client_seen_) {
            r.set("ja3", client_.ja3);
            r.set("ja3_hash", digest_hex(EVP_md5(), {reinterpret_cast<const std::uint8_t*>(
                                                          client_.ja3.data()),
                                                      client_.ja3.size()}));
        }
        if (server_seen_) {
            r.set("ja3s", server_.ja3s);
            r.set("ja3s_hash", digest_hex(EVP_md5(), {reinterpret_cast<const std::uint8_t*>(
                                                           server_.ja3s.data()),
                                                       server_.ja3s.size()}));
        }
        r.set("established", established_);
        if (!certs_.empty()) {
            r.begin_array("certificates");
            for (const auto& c : certs_) {
                r.begin_object();
                r.set("sha1", c.sha1);
                r.set("sha256", c.sha256);
                r.set("subject", c.subject);
                r.set("issuer", c.issuer);
                if (!c.common_name.empty()) r.set("cn", c.common_name);
                r.set("serial", c.serial);
                r.set("san_dns", c.san_dns);
                if (!c.san_email.empty()) r.set("san_email", c.san_email);
                r.end_object();
            }
            r.end_array();
        }
        ctx.host.record("tls", r);
        // Logged once: the facts are not read again (the server's direction reads no more
        // handshake messages once the record is written), only the version is.
        client_ = ClientHelloFacts{};
        std::vector<CertificateFacts>().swap(certs_);
        std::string().swap(server_.ja3s);
    }

    Direction dirs_[2];
    std::vector<std::uint8_t> record_copy_;
    ClientHelloFacts client_;
    ServerHelloFacts server_;
    std::vector<CertificateFacts> certs_;
    bool client_seen_ = false;
    bool server_seen_ = false;
    bool ccs_seen_[2] = {false, false};
    bool established_ = false;
    bool logged_ = false;
};

}  // namespace

bool tls_detect(std::span<const std::uint8_t> first, int /*direction*/,
                std::uint16_t /*src_port*/, std::uint16_t /*dst_port*/) {
    // A handshake record (SSL 3.0 .. TLS 1.3 framing) whose first message is a Client- or
    // ServerHello with a plausible length.
    if (first.size() < 10 || first[0] != kHandshake || first[1] != 3 || first[2] > 4) return false;
    const std::size_t record_len = be16(first.data() + 3);
    if (record_len < 4 || record_len > kMaxRecord) return false;
    if (first[5] != kClientHello && first[5] != kServerHello) return false;
    const std::size_t msg_len = be24(first.data() + 6);
    return msg_len >= 38 && first[9] == 3;
}

std::unique_ptr<Analyzer> make_tls_analyzer() { return std::make_unique<TlsAnalyzer>(); }

}  // namespace senningen::agent
