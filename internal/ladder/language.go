package ladder

import (
	"regexp"
	"strings"
)

// Languages. Sources tag their audio tracks with ISO 639-2 codes ("eng", "fra"; what
// ffprobe shows as tags.language for MP4, Matroska and MPEG-TS), while HLS LANGUAGE and
// DASH @lang take BCP 47 tags, whose language subtag is the ISO 639-1 code where one
// exists ("en", "fr"): players match those against the viewer's preferred languages,
// and a player set to "fr" does not pick a track labelled "fra". Language turns the
// one into the other with a small table of the common languages; a code the table does
// not hold passes through unchanged (a three-letter ISO 639-2 code is a valid BCP 47
// tag when the language has no two-letter one, e.g. "gsw").

// language is one row of the table: the ISO 639-1 code, the ISO 639-2 codes that mean
// it (terminology and, where it differs, bibliographic), and the language's name for
// itself, which HLS NAME should be written in (RFC 8216 4.3.4.1).
type language struct {
	iso1, iso2T, iso2B, name string
}

var languages = []language{
	{"af", "afr", "", "Afrikaans"},
	{"ar", "ara", "", "العربية"},
	{"bg", "bul", "", "Български"},
	{"bn", "ben", "", "বাংলা"},
	{"ca", "cat", "", "Català"},
	{"cs", "ces", "cze", "Čeština"},
	{"cy", "cym", "wel", "Cymraeg"},
	{"da", "dan", "", "Dansk"},
	{"de", "deu", "ger", "Deutsch"},
	{"el", "ell", "gre", "Ελληνικά"},
	{"en", "eng", "", "English"},
	{"es", "spa", "", "Español"},
	{"et", "est", "", "Eesti"},
	{"eu", "eus", "baq", "Euskara"},
	{"fa", "fas", "per", "فارسی"},
	{"fi", "fin", "", "Suomi"},
	{"fr", "fra", "fre", "Français"},
	{"ga", "gle", "", "Gaeilge"},
	{"gl", "glg", "", "Galego"},
	{"he", "heb", "", "עברית"},
	{"hi", "hin", "", "हिन्दी"},
	{"hr", "hrv", "", "Hrvatski"},
	{"hu", "hun", "", "Magyar"},
	{"hy", "hye", "arm", "Հայերեն"},
	{"id", "ind", "", "Bahasa Indonesia"},
	{"is", "isl", "ice", "Íslenska"},
	{"it", "ita", "", "Italiano"},
	{"ja", "jpn", "", "日本語"},
	{"ka", "kat", "geo", "ქართული"},
	{"ko", "kor", "", "한국어"},
	{"lt", "lit", "", "Lietuvių"},
	{"lv", "lav", "", "Latviešu"},
	{"mk", "mkd", "mac", "Македонски"},
	{"ms", "msa", "may", "Bahasa Melayu"},
	{"nb", "nob", "", "Norsk bokmål"},
	{"nl", "nld", "dut", "Nederlands"},
	{"nn", "nno", "", "Norsk nynorsk"},
	{"no", "nor", "", "Norsk"},
	{"pl", "pol", "", "Polski"},
	{"pt", "por", "", "Português"},
	{"ro", "ron", "rum", "Română"},
	{"ru", "rus", "", "Русский"},
	{"sk", "slk", "slo", "Slovenčina"},
	{"sl", "slv", "", "Slovenščina"},
	{"sq", "sqi", "alb", "Shqip"},
	{"sr", "srp", "", "Српски"},
	{"sv", "swe", "", "Svenska"},
	{"sw", "swa", "", "Kiswahili"},
	{"ta", "tam", "", "தமிழ்"},
	{"th", "tha", "", "ไทย"},
	{"tl", "tgl", "", "Tagalog"},
	{"tr", "tur", "", "Türkçe"},
	{"uk", "ukr", "", "Українська"},
	{"ur", "urd", "", "اردو"},
	{"vi", "vie", "", "Tiếng Việt"},
	{"zh", "zho", "chi", "中文"},
}

var (
	toISO1        = map[string]string{} // ISO 639-2 code (T or B) -> ISO 639-1
	languageNames = map[string]string{} // ISO 639-1 -> the language's own name
)

func init() {
	for _, l := range languages {
		toISO1[l.iso2T] = l.iso1
		if l.iso2B != "" {
			toISO1[l.iso2B] = l.iso1
		}
		languageNames[l.iso1] = l.name
	}
}

// languageTag is the shape of a BCP 47 tag this package accepts: a language subtag of
// two or three letters, then subtags of letters and digits (script, region, variants).
var languageTag = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)

// ValidLanguage reports whether s has the shape of a BCP 47 language tag ("en",
// "pt-BR", "gsw", "fra"), the form a ladder's language key takes.
func ValidLanguage(s string) bool {
	return len(s) <= 35 && languageTag.MatchString(s)
}

// Language returns tag as the BCP 47 tag players expect: "eng" and "en" give "en",
// "fre" and "fra" give "fr", "pt-br" gives "pt-BR". "und" (undetermined), the empty
// string and anything that is not shaped like a language tag give "": no language.
// A code the table does not know is kept, in lower case.
func Language(tag string) string {
	tag = strings.TrimSpace(tag)
	if !ValidLanguage(tag) {
		return ""
	}
	parts := strings.Split(tag, "-")
	parts[0] = strings.ToLower(parts[0])
	if parts[0] == "und" {
		return ""
	}
	if iso1, ok := toISO1[parts[0]]; ok {
		parts[0] = iso1
	}
	for i, p := range parts[1:] {
		switch len(p) {
		case 2: // region: upper case
			parts[i+1] = strings.ToUpper(p)
		case 4: // script: title case
			parts[i+1] = strings.ToUpper(p[:1]) + strings.ToLower(p[1:])
		default:
			parts[i+1] = strings.ToLower(p)
		}
	}
	return strings.Join(parts, "-")
}

// LanguageName returns the name of the language of a BCP 47 tag in that language
// ("Français" for "fr" and "fr-CA"), or the tag itself when the table does not know it.
func LanguageName(tag string) string {
	primary, _, _ := strings.Cut(tag, "-")
	if n, ok := languageNames[primary]; ok {
		return n
	}
	return tag
}
