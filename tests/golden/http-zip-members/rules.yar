rule zip_member_implant_marker
{
    meta:
        description = "Golden test: a marker only the inflated ZIP member shows"
        severity = "critical"
        category = "malware"
    strings:
        $marker = "ZIP-MEMBER-IMPLANT-MARKER"
    condition:
        $marker
}
