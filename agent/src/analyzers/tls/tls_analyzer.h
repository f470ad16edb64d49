// TLS (SSL 3.0 to TLS 1.3): the handshake in clear text. From the ClientHello the server
// name (SNI, matched as Intel::DOMAIN at SSL::IN_SERVER_NAME) and the JA3 fingerprint; from
// the ServerHello the version, cipher and JA3S; from a TLS <= 1.2 Certificate message the
// server's chain: per certificate the SHA-1 and SHA-256 of the DER, subject, issuer, CN and
// DNS/e-mail SANs (parsed by OpenSSL's d2i_X509). Each certificate's SHA-1 is matched as
// Intel::CERT_HASH, its DNS SANs as Intel::DOMAIN and e-mail SANs as Intel::EMAIL, all at
// X509::IN_CERT. One "tls" record per connection, when the handshake is over or the flow ends.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "senningen/agent/analyzers/analyzer.h"

namespace senningen::agent {

bool tls_detect(std::span<const std::uint8_t> first, int direction, std::uint16_t src_port,
                std::uint16_t dst_port);
std::unique_ptr<Analyzer> make_tls_analyzer();

// One certificate as the analyzer reports it.
struct CertificateFacts {
    std::string sha1;    // of the DER, lowercase hex
    std::string sha256;  // of the DER, lowercase hex (Zeek's fingerprint)
    std::string subject;  // RFC 2253 order, as Zeek's x509.log
    std::string issuer;
    std::string common_name;
    std::vector<std::string> san_dns;
    std::vector<std::string> san_email;
    std::string
        subject_email;   // the subject's emailAddress (PKCS #9), as Zeek's x509.zeek looks up
    std::string serial;  // uppercase hex
};

// Parses one DER certificate; false when OpenSSL cannot.
bool parse_certificate(std::span<const std::uint8_t> der, CertificateFacts& out);

// The JA3 string of a ClientHello body (the handshake message without its 4-byte header):
// "version,ciphers,extensions,groups,point_formats" with GREASE values left out. "" when the
// message does not parse.
std::string ja3_string(std::span<const std::uint8_t> client_hello);

}  // namespace senningen::agent
