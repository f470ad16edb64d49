#include "senningen/agent/capture/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace senningen::agent {

common::Result<void> drop_privileges(const std::string& user) {
    errno = 0;
    const passwd* pw = getpwnam(user.c_str());
    if (!pw) {
        return common::make_error(common::ErrorCode::kNotFound,
                                  "--user " + user + ": no such user");
    }
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    // Order matters: groups and gid while still root, the uid last.
    if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        return common::make_error(common::ErrorCode::kDenied,
                                  "--user " + user + ": cannot switch: " + std::strerror(errno));
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        return common::make_error(common::ErrorCode::kDenied,
                                  "--user " + user + ": root could be regained after the switch");
    }
    return {};
}

}  // namespace senningen::agent
