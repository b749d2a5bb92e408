"""Commands in the mail: #tags, ((tag: …)), [private], [draft], [alt N: …], [end]; and titles."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from relay.mail.commands import cut_at_end, extract, merge_tags
from relay.mail.parse import parse_message
from relay.mail.text import strip_title_prefixes


def _jpeg(seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (seed * 40 % 256, 90, 30)).save(out, "JPEG")
    return out.getvalue()


def _mail(subject: str, text: str, images: int = 0) -> bytes:
    head = (
        "From: Åsa Berg <asa@example.se>\r\n"
        f"Subject: {subject}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    out = [head, text.replace("\n", "\r\n").encode(), b"\r\n"]
    for number in range(1, images + 1):
        out.append(
            b"--b\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=photo%d.jpg\r\n\r\n"
            % number
            + base64.encodebytes(_jpeg(number)).replace(b"\n", b"\r\n")
        )
    out.append(b"--b--\r\n")
    return b"".join(out)


# --- hashtags -----------------------------------------------------------------------------------


def test_hashtags_are_collected_in_order_lowercased_once_and_stay_in_the_text() -> None:
    found = extract("Kväll på #Torget med #musik och #Torget igen, #år2025 och #snö_fall.")
    assert found.tags == ["torget", "musik", "år2025", "snö_fall"]
    assert found.text == "Kväll på #Torget med #musik och #Torget igen, #år2025 och #snö_fall."


@pytest.mark.parametrize(
    "text",
    [
        "see https://example.org/page#section",
        "https://example.org/#/route",
        "anchor example.org/page?x=#y",
        "issue #1234 and room #2",
        "C# and F# are languages",
        "an entity &#228; here",
        "mail a@#b",
        "## heading",
        "# heading",
    ],
)
def test_things_that_are_not_hashtags(text: str) -> None:
    assert extract(text).tags == []


def test_hashtag_at_line_start_and_after_punctuation() -> None:
    assert extract('#först\n(#inom) "#citat" ,#komma').tags == ["först", "inom", "citat", "komma"]


# --- ((tag: …)) ---------------------------------------------------------------------------------


def test_posterous_tag_block_is_removed_and_collected() -> None:
    found = extract("Bilder ((tag: Torget, street art,  musik )) från i dag")
    assert found.tags == ["torget", "street art", "musik"]
    assert found.text == "Bilder från i dag"


def test_tag_block_variants() -> None:
    assert extract("((Tags:a,b))").tags == ["a", "b"]
    assert extract("(( tag : #a ))").tags == ["a"]
    assert extract("((tag: , ,))").tags == []


def test_tags_from_both_syntaxes_keep_the_order_they_were_written_in() -> None:
    found = extract("#sommar ((tag: torget, musik)) #kväll #sommar")
    assert found.tags == ["sommar", "torget", "musik", "kväll"]
    assert found.text == "#sommar #kväll #sommar"


def test_a_hashtag_inside_a_removed_command_is_not_a_tag() -> None:
    assert extract("[alt: en #bild av scenen] text").tags == []


def test_tags_are_capped() -> None:
    found = extract(" ".join(f"#tag{n}x" for n in range(200)))
    assert len(found.tags) == 50
    assert merge_tags(["a", "b"], ["b", "", "c"]) == ["a", "b", "c"]


# --- flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "private", "draft", "rest"),
    [
        ("[private] Hej", True, False, "Hej"),
        ("Hej [PRIVATE]", True, False, "Hej"),
        ("Hej [ draft ] där", False, True, "Hej där"),
        ("[draft]\n[private]\nHej", True, True, "Hej"),
        ("Hej\n\n[private]\n\nDå", True, False, "Hej\n\nDå"),
        ("privat [privat] ej", False, False, "privat [privat] ej"),
    ],
)
def test_private_and_draft(text: str, private: bool, draft: bool, rest: str) -> None:
    found = extract(text)
    assert (found.private, found.draft, found.text) == (private, draft, rest)


# --- alt ---------------------------------------------------------------------------------------


def test_alt_texts_by_number() -> None:
    found = extract("Bilder\n[alt 2: Publiken]\n[alt: Scenen\n i kvällsljus]\n[ALT 3 : Tältet]")
    assert found.alts == {1: "Scenen i kvällsljus", 2: "Publiken", 3: "Tältet"}
    assert found.text == "Bilder"


def test_alt_without_text_or_for_number_zero_is_removed_but_ignored() -> None:
    found = extract("a [alt 0: noll] b [alt 2:   ] c")
    assert (found.alts, found.text) == ({}, "a b c")


def test_alt_texts_go_to_the_attachments_in_order() -> None:
    mail = parse_message(_mail("Bilder", "Tre bilder [alt 2: Andra] [alt: Första] [alt 9: X]", 3))
    assert [p.alt for p in mail.parts] == ["Första", "Andra", None]
    assert mail.text == "Tre bilder"


# --- [end] --------------------------------------------------------------------------------------


def test_end_cuts_everything_after_it() -> None:
    assert cut_at_end("Hej [END] hemligt") == ("Hej ", True)
    assert cut_at_end("Hej") == ("Hej", False)


def test_end_is_applied_before_the_footer_is_looked_for() -> None:
    text = "Bilder från i dag.\n\nSkickat från min iPhone\n[end]\nCitat av tidigare mejl"
    assert parse_message(_mail("x", text)).text == "Bilder från i dag."


def test_end_drops_later_text_parts_too() -> None:
    raw = _mail("x", "Första [end] bort").replace(
        b"--b--",
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAndra delen\r\n--b--",
    )
    assert parse_message(raw).text == "Första"


def test_end_in_an_html_body() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>Synlig</p><p>[end]</p><p>Osynlig</p>"
    )
    assert parse_message(raw).text == "Synlig"


# --- the whole mail ----------------------------------------------------------------------------


def test_commands_in_the_subject_and_the_body() -> None:
    mail = parse_message(
        _mail("[private] Fwd: Kväll på #torget ((tag: Musik))", "Text #sommar [draft]", 1)
    )
    assert mail.title == "Kväll på #torget"
    assert mail.tags == ["torget", "musik", "sommar"]
    assert (mail.private, mail.draft) == (True, True)
    assert mail.text == "Text #sommar"


def test_the_e2e_example() -> None:
    text = "#sommar ((tag: torget, musik)) [alt 1: Scenen] [private]\nKonsert.\n[end]\nBort."
    mail = parse_message(_mail("Konsert", text, 1))
    assert mail.tags == ["sommar", "torget", "musik"]
    assert mail.private and not mail.draft
    assert mail.text == "#sommar\nKonsert."
    assert [p.alt for p in mail.parts] == ["Scenen"]


def test_mail_without_commands_is_unchanged() -> None:
    mail = parse_message(_mail("Hej", "Bara text [1] och (( inget ))."))
    assert (mail.text, mail.tags, mail.private, mail.draft) == (
        "Bara text [1] och (( inget )).",
        [],
        False,
        False,
    )


@pytest.mark.parametrize(
    "text",
    [
        "((tag:" * 20_000,
        "[alt 1:" * 20_000,
        "[" + " " * 100_000,
        "#" * 100_000,
        "((tag: " + "a" * 100_000,
        "[private" * 20_000,
    ],
)
@pytest.mark.timeout(120)  # a guard against runaway work; no figure to meet
def test_hostile_commands_are_linear(text: str) -> None:
    extract(text)
    cut_at_end(text)


# --- titles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "title"),
    [
        ("Fwd: Bilder", "Bilder"),
        ("FW: Bilder", "Bilder"),
        ("VB: SV: Re: Bilder", "Bilder"),
        ("WG: AW: Protokoll", "Protokoll"),
        ("TR: Photos", "Photos"),
        ("RV: Fotos", "Fotos"),
        ("Doorst: Antw: Foto's", "Foto's"),
        ("Re[2]: Fwd:Fwd: Bilder", "Bilder"),
        ("Re:", ""),
        ("Rebus: svaret", "Rebus: svaret"),
        ("Bilder: Fwd: från i dag", "Bilder: Fwd: från i dag"),
    ],
)
def test_forward_and_reply_prefixes_are_dropped(subject: str, title: str) -> None:
    assert strip_title_prefixes(subject) == title
    assert parse_message(_mail(subject, "text")).title == title


@pytest.mark.parametrize(
    "subject",
    [
        "Multimedia message",
        "MMS",
        "Picture message",
        "Bildmeddelande",
        "(no subject)",
        "No Subject",
        "Ingen ämnesrad",
        "(Ingen ämnesrad)",
        "Kein Betreff",
        "Fwd: MMS",
        "[private] Multimedia Message",
    ],
)
def test_generic_subjects_are_no_title(subject: str) -> None:
    assert parse_message(_mail(subject, "text")).title == ""


def test_a_subject_that_only_mentions_mms_is_a_title() -> None:
    assert parse_message(_mail("MMS från stugan", "text")).title == "MMS från stugan"
