"""Label config XML -> ProjectSchema (rating scale, the image or text field, the modality)."""

from __future__ import annotations

import pytest

from ml_backend.adapters.ls_config import parse_label_config
from ml_backend.core.errors import ConfigError
from tests.conftest import CHOICES_CONFIG, NUMBER_CONFIG, RATING_CONFIG, TEXT_CONFIG, TEXT_URL_CONFIG


def test_number_config():
    schema = parse_label_config(NUMBER_CONFIG)
    assert (schema.object_name, schema.data_key) == ("img", "image")
    scale = schema.scale
    assert (scale.kind, scale.name, scale.to_name) == ("number", "score", "img")
    assert (scale.minimum, scale.maximum, scale.step) == (0.0, 10.0, 0.5)


def test_number_without_step_takes_the_input_step_of_label_studio():
    """Label Studio's number input steps by 1 without a step: a pre-selected 71.704727 showed as invalid
    (fuzz pass 4, 2026-12-02). A range too narrow for whole steps keeps its values unrounded."""
    xml = '<View><Image name="i" value="$url"/><Number name="n" toName="i" min="-5" max="5"/></View>'
    schema = parse_label_config(xml)
    assert schema.data_key == "url"
    assert (schema.scale.minimum, schema.scale.maximum, schema.scale.step) == (-5.0, 5.0, 1.0)
    assert schema.scale.from_target(0.43) == 2
    narrow = parse_label_config(xml.replace('min="-5" max="5"', 'min="0" max="1"')).scale
    assert narrow.step is None and narrow.from_target(0.43) == 0.715


def test_rating_config_defaults_and_max_rating():
    scale = parse_label_config(RATING_CONFIG).scale
    assert (scale.kind, scale.minimum, scale.maximum) == ("rating", 1.0, 5.0)
    xml = '<View><Image name="i" value="$image"/><Rating name="r" toName="i" maxRating="10"/></View>'
    assert parse_label_config(xml).scale.maximum == 10.0
    xml_default = '<View><Image name="i" value="$image"/><Rating name="r" toName="i"/></View>'
    assert parse_label_config(xml_default).scale.maximum == 5.0


def test_numeric_choices_config():
    scale = parse_label_config(CHOICES_CONFIG).scale
    assert scale.kind == "choices"
    assert dict(scale.choices) == {"-1": -1.0, "0": 0.0, "+1": 1.0}


def test_one_to_five_choices_are_scaled():
    xml = ('<View><Image name="i" value="$image"/><Choices name="c" toName="i">'
           + "".join(f'<Choice value="{v}"/>' for v in range(1, 6)) + "</Choices></View>")
    assert dict(parse_label_config(xml).scale.choices) == pytest.approx(
        {"1": -1.0, "2": -0.5, "3": 0.0, "4": 0.5, "5": 1.0})


def test_choice_alias_is_the_value_label_studio_stores():
    xml = """<View><Image name="i" value="$image"/>
      <Choices name="c" toName="i">
        <Choice value="Not relevant" alias="-1"/><Choice value="Relevant" alias="1"/>
      </Choices></View>"""
    assert dict(parse_label_config(xml).scale.choices) == {"-1": -1.0, "1": 1.0}


def test_choice_values_map_non_numeric_choices():
    xml = """<View><Image name="i" value="$image"/>
      <Choices name="c" toName="i"><Choice value="Yes"/><Choice value="No"/><Choice value="Unsure"/></Choices></View>"""
    scale = parse_label_config(xml, choice_values={"Yes": 1, "No": -1, "Unsure": 0}).scale
    assert dict(scale.choices) == {"Yes": 1, "No": -1, "Unsure": 0}


@pytest.mark.parametrize(
    "choice_values, message",
    [
        ({"Yes": 1, "No": -1, "Unsure": 0, "Maybe": 0.5}, r"does not offer"),
        ({"Yes": 1, "No": -1}, r"no target for choices \['Unsure'\]"),
        ({"Yes": 1, "No": -1, "Unsure": 3}, r"\[-1, 1\]"),
    ],
)
def test_choice_values_errors(choice_values, message):
    xml = """<View><Image name="i" value="$image"/>
      <Choices name="c" toName="i"><Choice value="Yes"/><Choice value="No"/><Choice value="Unsure"/></Choices></View>"""
    with pytest.raises(ConfigError, match=message):
        parse_label_config(xml, choice_values=choice_values)


TWO_CONTROLS = """<View>
  <Image name="photo" value="$photo"/>
  <Choices name="quality" toName="photo"><Choice value="-1"/><Choice value="1"/></Choices>
  <Rating name="stars" toName="photo" maxRating="4"/>
</View>"""


def test_first_usable_control_wins_without_rating_control_and_the_admin_is_told():
    """With "How many dogs? 1/2/3" before the relevance control, "1 dog" was read as a "no", and nothing the
    admin could see named the control used (fuzz pass 4, 2026-12-02)."""
    schema = parse_label_config(TWO_CONTROLS)
    assert schema.scale.name == "quality"
    assert schema.notes == ("ratings are read from <Choices name='quality'>; 'stars' could hold a rating too: set "
                            "rating_control in the project's extra params to choose",)
    assert parse_label_config(TWO_CONTROLS, rating_control="stars").notes == ()
    assert schema.describe() == {"control": "quality", "kind": "choices", "object": "photo", "field": "photo",
                                 "targets": {"-1": -1.0, "1": 1.0}}


def test_a_control_that_cannot_hold_a_rating_is_passed_over_for_one_that_can():
    """A category Choices before a Rating refused the config, with advice (choice_values) that did not fit."""
    xml = """<View><Image name="i" value="$image"/>
      <Choices name="animal" toName="i"><Choice value="cat"/><Choice value="dog"/></Choices>
      <Rating name="stars" toName="i"/></View>"""
    schema = parse_label_config(xml)
    assert schema.scale.name == "stars"
    assert len(schema.notes) == 1 and schema.notes[0].startswith("<Choices name='animal'> not used: ")


@pytest.mark.parametrize("spelling", ["maxrating", "MAXRATING", "maxRating"])
def test_attribute_names_are_read_in_any_case_as_label_studio_reads_them(spelling):
    """Label Studio's editor lowercases attribute names: maxrating="10" shows ten stars, and 5 of them were
    read as a full "yes" on the default five (fuzz pass 4, 2026-12-02)."""
    xml = f'<View><Image name="i" value="$image"/><Rating name="r" toname="i" {spelling}="10"/></View>'
    assert parse_label_config(xml).scale.maximum == 10.0
    text = '<View><Text name="t" value="$doc" VALUETYPE="url"/><Number name="n" toName="t" MIN="0" Max="1"/></View>'
    schema = parse_label_config(text)
    assert schema.value_is_url and (schema.scale.minimum, schema.scale.maximum) == (0.0, 1.0)


def test_a_multiple_choice_control_is_refused():
    """Two ticked boxes made every such rating a 422 after the config had been accepted."""
    xml = """<View><Image name="i" value="$image"/>
      <Choices name="c" toName="i" choice="multiple"><Choice value="-1"/><Choice value="1"/></Choices></View>"""
    with pytest.raises(ConfigError, match="several choices.*remove choice"):
        parse_label_config(xml)


def test_choice_values_pick_the_choices_control_they_name():
    xml = """<View><Image name="i" value="$image"/>
      <Choices name="dogs" toName="i"><Choice value="1"/><Choice value="2"/><Choice value="3"/></Choices>
      <Choices name="relevant" toName="i"><Choice value="Yes"/><Choice value="No"/></Choices></View>"""
    schema = parse_label_config(xml, choice_values={"Yes": 1, "No": -1})
    assert schema.scale.name == "relevant" and dict(schema.scale.choices) == {"Yes": 1, "No": -1}
    assert schema.notes[0].startswith("<Choices name='dogs'> not used: choice_values names")


def test_rating_control_selects_a_control_by_name():
    schema = parse_label_config(TWO_CONTROLS, rating_control="stars")
    assert (schema.scale.name, schema.scale.kind, schema.scale.maximum) == ("stars", "rating", 4.0)
    assert schema.data_key == "photo"


def test_an_image_config_is_an_image_project():
    schema = parse_label_config(CHOICES_CONFIG)
    assert (schema.modality, schema.value_is_url) == ("image", False)


def test_a_text_config_is_a_text_project_with_inline_text():
    schema = parse_label_config(TEXT_CONFIG)
    assert (schema.modality, schema.object_name, schema.data_key, schema.value_is_url) == ("text", "txt", "text", False)
    assert (schema.scale.kind, schema.scale.to_name) == ("choices", "txt")


def test_a_text_config_with_value_type_url_reads_a_file():
    schema = parse_label_config(TEXT_URL_CONFIG)
    assert (schema.modality, schema.data_key, schema.value_is_url) == ("text", "doc", True)


def test_rating_control_can_pick_the_text_over_the_image():
    xml = """<View><Text name="caption" value="$text"/><Image name="i" value="$image"/>
      <Number name="on_text" toName="caption" min="0" max="1"/>
      <Number name="on_image" toName="i" min="0" max="1"/></View>"""
    schema = parse_label_config(xml, rating_control="on_text")
    assert (schema.modality, schema.data_key) == ("text", "text")


def test_with_controls_on_a_text_and_an_image_the_image_one_is_picked():
    xml = """<View><Text name="caption" value="$text"/><Image name="i" value="$image"/>
      <Number name="on_text" toName="caption" min="0" max="1"/>
      <Number name="on_image" toName="i" min="0" max="1"/></View>"""
    assert parse_label_config(xml).scale.name == "on_image"


@pytest.mark.parametrize(
    "xml, kwargs, message",
    [
        ("<View><Image name='i' value='$image'", {}, "not valid XML"),
        ("<View><HyperText name='t' value='$html'/><Number name='n' toName='t' min='0' max='1'/></View>", {},
         "no <Image> or <Text>"),
        ("<View><Image name='i' value='$image'/></View>", {}, "no usable rating control.*found no Number"),
        ("<View><Image name='i' value='$image'/><Labels name='l' toName='i'><Label value='a'/></Labels></View>", {},
         "no usable rating control"),
        ("<View><Image name='i' value='$image'/><Number name='n' toName='other' min='0' max='1'/></View>", {},
         "no usable rating control.*toName='other'"),
        ("<View><Image name='i' value='$image'/><Number name='n' toName='i'/></View>", {}, "numeric min and max"),
        ("<View><Image name='i' value='$image'/><Number name='n' toName='i' min='a' max='1'/></View>", {},
         "numeric min and max"),
        ("<View><Image name='i' value='$image'/><Number name='n' toName='i' min='1' max='1'/></View>", {}, "max > min"),
        ("<View><Image name='i' value='$image'/><Rating name='r' toName='i' maxRating='1'/></View>", {}, "whole maxRating from 2 to 100"),
        ("<View><Image name='i' value='$image'/><Choices name='c' toName='i'><Choice value='Yes'/><Choice value='No'/>"
         "</Choices></View>", {}, "non-numeric values.*choice_values"),
        ("<View><Image name='i' value='image'/><Number name='n' toName='i' min='0' max='1'/></View>", {},
         r'value=\\?"\$image'),
        ("<View><Image name='i' value='$'/><Number name='n' toName='i' min='0' max='1'/></View>", {}, "must read a task field"),
        (TWO_CONTROLS, {"rating_control": "missing"}, "rating_control 'missing'.*found <Choices name='quality'"),
        # these two raised ValueError and UnicodeEncodeError, answered as 500s (found by fuzzing, 2026-12-02)
        ("<View><Image name='i' value='$image'/><Choices name='c' toName='i'/></View>", {}, "no <Choice value"),
        ("<View><Image name='i\ud800' value='$image'/></View>", {}, r"not valid XML: it holds '\\ud800'"),
    ],
    ids=["bad-xml", "no-image-or-text", "no-control", "only-labels", "control-not-on-image", "number-no-minmax",
         "number-non-numeric-min", "number-empty-range", "rating-max-1", "non-numeric-choices",
         "image-value-without-dollar", "image-value-only-dollar", "unknown-rating-control", "choices-without-choice",
         "lone-surrogate"],
)
def test_unusable_configs_raise_a_clear_config_error(xml, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        parse_label_config(xml, **kwargs)
