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

rule encoded_page_marker
{
    meta:
        description = "Golden test: a marker only the inflated gzip page shows"
        severity = "high"
        category = "malware"
    strings:
        $marker = "ENCODED-PAGE-MARKER"
    condition:
        $marker
}
