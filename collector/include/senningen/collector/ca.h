// The collector's small certificate authority for enrolling agents. One directory holds it:
//
//   ca.key, ca.crt               the CA (EC P-256, self-signed); ca.key is 0600
//   collector.key, collector.crt the collector's own certificate for the Broker listener
//   crl.pem                      the revocation list the collector checks (re-signed on revoke)
//   issued.tsv                   what was issued: serial, agent, not-after, V or R, revoked-at
//
// Everything is made with OpenSSL; nothing here does cryptography of its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "senningen/common/result.h"

namespace senningen::collector {

inline constexpr const char* kCollectorCommonName = "senningen-collector";

struct CaPaths {
    std::string dir;
    std::string ca_key() const { return dir + "/ca.key"; }
    std::string ca_certificate() const { return dir + "/ca.crt"; }
    std::string collector_key() const { return dir + "/collector.key"; }
    std::string collector_certificate() const { return dir + "/collector.crt"; }
    std::string crl() const { return dir + "/crl.pem"; }
    std::string index() const { return dir + "/issued.tsv"; }
};

// Creates DIR (0700) with a new CA valid for DAYS, the collector's certificate and an empty
// revocation list. An existing CA in DIR is never overwritten (kInvalidArgument naming it).
common::Result<void> init_ca(const std::string& dir, int days);

struct IssuedCertificate {
    std::string serial;  // lowercase hex
    std::string key_pem;
    std::string certificate_pem;
    std::string ca_pem;
};

// Issues a certificate for agent NAME valid from NOT_BEFORE to NOT_AFTER (Unix seconds) and
// records it in issued.tsv. kInvalidArgument for a bad name or window, kNotFound when DIR
// holds no CA.
common::Result<IssuedCertificate> issue_agent_certificate(const std::string& dir,
                                                          const std::string& name,
                                                          std::int64_t not_before,
                                                          std::int64_t not_after);

// Revokes every valid certificate issued to NAME and re-signs crl.pem; returns how many were
// revoked (kNotFound when none was valid).
common::Result<std::size_t> revoke_agent(const std::string& dir, const std::string& name);

}  // namespace senningen::collector
