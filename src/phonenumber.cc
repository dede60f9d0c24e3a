// libphonenumber behind one C function (see phonenumber.h); the project's only
// C++ file. It takes one number already cut out of its text by identity.c,
// parses it with the default region, checks it against the region's metadata
// and formats it as E.164. PhoneNumberUtil is a read-only singleton once
// built, so this is safe on any thread. No exception may cross into C: the
// library does not throw by design, but std::string can (bad_alloc).
#include "switchboard/phonenumber.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cstdio>
#include <cstring>
#include <string>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

static int fail(char *reason, size_t reasonlen, const char *text)
{
    if (reason && reasonlen)
        std::snprintf(reason, reasonlen, "%s", text);
    return -1;
}

static const char *parse_error_text(PhoneNumberUtil::ErrorType e)
{
    switch (e) {
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
        return "no valid country code (write it as +<country code> ...)";
    case PhoneNumberUtil::NOT_A_NUMBER:
        return "not a phone number";
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
    case PhoneNumberUtil::TOO_SHORT_NSN:
        return "too few digits for a phone number";
    case PhoneNumberUtil::TOO_LONG_NSN:
        return "too many digits for a phone number";
    default:
        return "not a phone number";
    }
}

extern "C" int sb_phonenumber_e164(const char *number, const char *region, char *out, size_t outlen,
                                   char *reason, size_t reasonlen)
{
    if (out && outlen)
        out[0] = '\0';
    if (!number || !*number)
        return fail(reason, reasonlen, "no digits");
    try {
        const PhoneNumberUtil &util = *PhoneNumberUtil::GetInstance();
        // "ZZ" is libphonenumber's own "unknown region": only numbers in
        // international form (a leading '+') can then be parsed.
        std::string reg = region && *region ? region : "ZZ";
        PhoneNumber pn;
        PhoneNumberUtil::ErrorType e = util.Parse(number, reg, &pn);
        if (e != PhoneNumberUtil::NO_PARSING_ERROR)
            return fail(reason, reasonlen, parse_error_text(e));
        if (!util.IsValidNumber(pn))
            return fail(reason, reasonlen, "not a valid number for its country");
        std::string e164;
        util.Format(pn, PhoneNumberUtil::E164, &e164);
        if (!out || e164.size() >= outlen)
            return fail(reason, reasonlen, "the formatted number does not fit");
        std::memcpy(out, e164.c_str(), e164.size() + 1);
        return 0;
    } catch (...) {
        return fail(reason, reasonlen, "internal error in the phone number library");
    }
}
