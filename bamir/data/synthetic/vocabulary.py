"""The synthetic world's vocabulary: interest topics, category profiles, words and tags.

Every topic has its own caption words, hashtags (without ``#``), biography roles,
ConceptNet-style concepts, profile business categories and a visual motif that
:mod:`bamir.data.synthetic.images` renders. Topics overlap a little on purpose
(``trail`` is a running and a hiking word, ``studio`` a music and an art word), as real
interests do. Category profiles say which topics the brands of each of the 12 Gan et al.
categories talk about; clusters say which topics go together in a lifestyle (the hidden
complementarity of the planted affinity: a fitness brand also suits a healthy-eating
influencer, whose words it never uses).
"""

from __future__ import annotations

from dataclasses import dataclass

from bamir.data.schema import CATEGORIES

#: Shapes the image renderer knows.
SHAPES = ("circle", "ring", "rect", "triangle", "diamond", "hlines", "vlines", "dlines",
          "waves", "dots", "grid", "blob")
#: Background textures the image renderer knows.
TEXTURES = ("smooth", "grain", "stripes", "checker", "bokeh")


@dataclass(frozen=True)
class Motif:
    """How a topic looks: background gradient colours, shape colour, shape kind, texture."""

    palette: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
    shape: str
    texture: str
    count: tuple[int, int] = (2, 6)
    gradient: str = "vertical"  # vertical | horizontal | radial | diagonal


@dataclass(frozen=True)
class Topic:
    name: str
    words: tuple[str, ...]
    hashtags: tuple[str, ...]
    roles: tuple[str, ...]
    concepts: tuple[str, ...]
    business: tuple[str, ...]
    motif: Motif
    popularity: float = 1.0


def _t(name, words, hashtags, roles, concepts, business, palette, shape, texture,
       count=(2, 6), gradient="vertical", popularity=1.0) -> Topic:
    return Topic(name, tuple(words.split()), tuple(hashtags.split()), tuple(roles.split()),
                 tuple(concepts.split()), tuple(business), Motif(palette, shape, texture, count, gradient),
                 popularity)


TOPICS: tuple[Topic, ...] = (
    _t("travel", "trip passport wanderlust journey destination suitcase island beach explore sunset vacation hotel backpacking getaway itinerary",
       "travel wanderlust travelgram instatravel passportready traveltheworld", "traveler explorer nomad wanderer",
       "travel vacation tourism adventure", ["Travel Company", "Blogger"],
       ((80, 165, 230), (240, 215, 165), (250, 140, 60)), "circle", "smooth", (1, 2), "vertical", 1.6),
    _t("aviation", "plane runway cockpit jet airport lounge boarding takeoff landing pilot wing clouds terminal layover",
       "aviation avgeek planespotting pilotlife airplane", "pilot avgeek planespotter",
       "aviation airplane airport flight", ["Aviation", "Pilot"],
       ((170, 200, 230), (245, 245, 250), (110, 115, 125)), "triangle", "stripes", (1, 3), "horizontal", 0.5),
    _t("cars", "engine horsepower wheels garage roadtrip highway turbo coupe convertible drift detailing dashboard torque cruise",
       "carsofinstagram carlifestyle roadtrip instacars supercar", "petrolhead driver mechanic",
       "car driving vehicle motorsport", ["Automotive", "Vehicle Enthusiast"],
       ((200, 30, 35), (25, 25, 30), (185, 190, 195)), "rect", "stripes", (1, 3), "diagonal", 0.8),
    _t("cycling", "bike pedal helmet climb peloton saddle ride gravel miles cadence jersey descent sprint spokes",
       "cycling bikelife roadbike cyclinglife outsideisfree", "cyclist rider",
       "cycling bicycle sport", ["Athlete", "Sports"],
       ((70, 160, 70), (240, 220, 60), (30, 30, 30)), "ring", "grain", (1, 3), "horizontal", 0.5),
    _t("fashion", "outfit denim jacket ootd style trend lookbook vintage wardrobe blazer silhouette tailoring dress streetstyle",
       "fashion ootd styleinspo fashionblogger whatiwore streetstyle", "stylist fashionista model",
       "fashion clothing style", ["Fashion Model", "Fashion Designer", "Blogger"],
       ((235, 150, 180), (20, 20, 25), (245, 235, 215)), "vlines", "checker", (3, 7), "horizontal", 1.6),
    _t("sneakers", "sneakers kicks laces sole drop release retro hightops colorway unboxing streetwear trainers midsole grail",
       "sneakerhead kicks sneakers kicksonfire sneakerholics", "sneakerhead collector",
       "sneaker footwear streetwear shoes", ["Shopping & Retail", "Collector"],
       ((245, 245, 245), (250, 120, 30), (120, 120, 125)), "blob", "grain", (1, 2), "radial", 0.7),
    _t("running", "run marathon miles pace trail splits tempo finishline training sunrise longrun race stride intervals",
       "running runnersofinstagram marathontraining runhappy instarunners", "runner marathoner triathlete",
       "running marathon athlete exercise", ["Athlete", "Sports & Recreation"],
       ((150, 240, 60), (40, 110, 200), (90, 90, 95)), "dlines", "smooth", (2, 5), "diagonal", 1.0),
    _t("fitness", "workout gym squat deadlift gains reps protein cardio sweat strength hiit abs bench lifting",
       "fitness gymlife fitfam workout fitnessmotivation gains", "trainer coach bodybuilder",
       "fitness exercise gym health", ["Fitness Trainer", "Gym/Physical Fitness Center", "Athlete"],
       ((20, 20, 20), (210, 40, 40), (160, 165, 175)), "hlines", "grain", (2, 5), "vertical", 1.5),
    _t("yoga", "yoga mat breathe mindful meditation balance flow namaste stretch calm retreat asana chakra intention",
       "yoga yogaeveryday mindfulness wellness meditation yogi", "yogi healer",
       "yoga wellness meditation mindfulness", ["Yoga Studio", "Health/Beauty"],
       ((190, 170, 225), (180, 205, 170), (235, 225, 205)), "ring", "smooth", (1, 3), "radial", 0.9),
    _t("coffee", "coffee espresso latte barista beans roast brew cappuccino cafe mug pourover crema aroma caffeine",
       "coffee coffeetime latteart coffeelover butfirstcoffee", "barista roaster",
       "coffee cafe beverage caffeine", ["Coffee Shop", "Blogger"],
       ((110, 70, 40), (235, 215, 185), (50, 30, 20)), "circle", "grain", (1, 3), "radial", 1.0),
    _t("cocktails", "cocktail bar mixology gin whiskey rum party nightout dancefloor neon shots tonic bartender garnish",
       "cocktails nightlife mixology cheers drinkstagram partytime", "bartender mixologist partygoer",
       "cocktail nightlife alcohol party", ["Bar", "Nightlife"],
       ((110, 30, 150), (250, 60, 170), (15, 10, 25)), "dots", "bokeh", (5, 12), "radial", 0.8),
    _t("cooking", "recipe kitchen homemade pasta dinner spices garlic skillet sauce ingredients grill flavor lunch feast",
       "foodie homecooking recipes foodstagram instafood yummy", "chef cook foodie",
       "cooking recipe food cuisine", ["Chef", "Food & Beverage"],
       ((210, 45, 40), (245, 240, 230), (60, 140, 60)), "circle", "smooth", (1, 4), "vertical", 1.4),
    _t("baking", "cake cookies bread sourdough frosting pastry oven cupcake dough chocolate sprinkles dessert croissant vanilla",
       "baking bakingfromscratch dessert cakedecorating sweettooth", "baker patissier",
       "baking dessert pastry", ["Bakery", "Food & Beverage"],
       ((250, 200, 215), (255, 240, 180), (255, 255, 250)), "blob", "bokeh", (2, 5), "radial", 0.9),
    _t("healthy", "salad smoothie vegan avocado greens plantbased nutrition bowl kale superfood detox glutenfree oats quinoa",
       "healthyfood vegan plantbased eatclean nutrition smoothiebowl", "nutritionist vegan dietitian",
       "nutrition vegan health vegetable", ["Nutritionist", "Health/Beauty"],
       ((100, 180, 60), (245, 225, 90), (240, 140, 40)), "triangle", "grain", (3, 7), "diagonal", 1.1),
    _t("tech", "gadget smartphone laptop unboxing setup specs battery wireless headphones review processor tablet smartwatch charger",
       "tech gadgets techreview smartphone setup techie", "techie reviewer engineer developer",
       "technology gadget computer electronics", ["Science, Technology & Engineering", "Video Creator"],
       ((35, 40, 50), (40, 200, 220), (230, 235, 240)), "grid", "smooth", (1, 2), "horizontal", 0.9),
    _t("gaming", "gaming console controller stream esports level quest multiplayer headset loot speedrun pixel arcade boss",
       "gaming gamer twitch esports videogames gamingsetup", "gamer streamer",
       "game esports videogame", ["Gamer", "Video Creator"],
       ((20, 230, 90), (130, 40, 200), (10, 10, 15)), "rect", "checker", (4, 9), "vertical", 0.8),
    _t("photography", "camera lens shot aperture goldenhour portrait tripod exposure landscape shutter film editing frame composition",
       "photography photooftheday streetphotography landscapephotography filmphotography visualsoflife",
       "photographer filmmaker creator", "photography camera art", ["Photographer", "Digital Creator"],
       ((235, 235, 235), (25, 25, 25), (230, 180, 40)), "rect", "grain", (1, 2), "diagonal", 1.0),
    _t("music", "music concert guitar song studio album tour gig vinyl playlist melody beat stage lyrics",
       "music livemusic newmusic musician concert guitar", "musician singer songwriter producer dj",
       "music concert song", ["Musician/Band", "Artist"],
       ((15, 15, 20), (220, 170, 40), (200, 30, 45)), "waves", "smooth", (2, 4), "horizontal", 1.0),
    _t("film", "movie cinema series premiere trailer popcorn binge director screenplay actor scene festival redcarpet sequel",
       "movies cinema filmlovers bingewatching moviereview", "cinephile actor critic filmmaker",
       "film cinema television entertainment", ["Actor", "Film Director", "Public Figure"],
       ((120, 15, 20), (10, 10, 10), (225, 190, 90)), "rect", "stripes", (1, 2), "vertical", 0.7),
    _t("jewelry", "necklace ring bracelet earrings gold silver gemstone sparkle pendant handmade diamond charm stack engagement",
       "jewelry jewelrygram accessories handmadejewelry rings", "jeweler designer collector",
       "jewelry accessory gem", ["Jewelry/Watches", "Designer"],
       ((215, 175, 60), (250, 250, 245), (30, 150, 145)), "diamond", "bokeh", (3, 8), "radial", 0.7),
    _t("weddings", "wedding bride groom bouquet venue ceremony vows reception flowers gown celebration honeymoon proposal toast",
       "wedding bridetobe weddinginspiration weddingday engaged", "bride planner florist",
       "wedding marriage celebration flower", ["Wedding Planning Service", "Event Planner"],
       ((255, 255, 255), (240, 200, 200), (130, 170, 120)), "blob", "smooth", (3, 7), "radial", 0.7),
    _t("makeup", "makeup lipstick eyeshadow palette foundation contour glam lashes brows highlighter blush tutorial swatch mascara",
       "makeup mua makeuptutorial glam beauty makeupaddict", "mua artist beautician",
       "makeup cosmetics beauty", ["Makeup Artist", "Health/Beauty"],
       ((200, 40, 80), (235, 200, 180), (120, 50, 60)), "blob", "grain", (2, 5), "diagonal", 1.2),
    _t("skincare", "skincare serum moisturizer glow spf cleanser routine hydration acne retinol toner mask dewy pores",
       "skincare skincareroutine glowingskin selfcare skincarejunkie", "esthetician dermatologist",
       "skincare skin cosmetics beauty", ["Health/Beauty", "Skin Care Service"],
       ((250, 250, 250), (170, 225, 200), (250, 190, 160)), "rect", "smooth", (1, 3), "vertical", 0.9),
    _t("hair", "hair curls braids haircut salon blowout balayage color styling shampoo extensions updo barber fade",
       "hair hairstyle hairgoals balayage curlyhair barber", "hairstylist barber colorist",
       "hair hairdresser salon", ["Hair Salon", "Barber Shop"],
       ((120, 70, 35), (235, 200, 130), (190, 90, 40)), "waves", "stripes", (3, 6), "vertical", 0.8),
    _t("charity", "volunteer charity donate fundraiser community cause awareness kindness support mission outreach hope giving rescue",
       "charity volunteer givingback nonprofit makeadifference donate", "volunteer activist advocate",
       "charity volunteering community nonprofit", ["Community Organization", "Nonprofit Organization"],
       ((240, 130, 40), (40, 160, 160), (250, 250, 245)), "circle", "smooth", (2, 4), "horizontal", 0.6),
    _t("sustainability", "recycle ocean plastic climate planet zerowaste compost nature conservation earth solar reusable thrift green",
       "sustainability zerowaste climateaction ecofriendly savetheplanet gogreen", "environmentalist activist conservationist",
       "environment sustainability nature ecology", ["Environmental Conservation Organization", "Community"],
       ((60, 150, 80), (60, 120, 200), (140, 100, 60)), "blob", "grain", (2, 5), "vertical", 0.7),
    _t("pets", "dog puppy cat kitten paws adoption walkies treats fur vet adopt furbaby leash cuddles",
       "dogsofinstagram catsofinstagram petsofinstagram adoptdontshop puppylove", "dogmom catlady petlover",
       "pet dog cat animal", ["Pet", "Animal Shelter"],
       ((160, 110, 60), (245, 235, 215), (80, 130, 200)), "blob", "grain", (1, 3), "radial", 1.1),
    _t("home", "interior decor livingroom plants cozy renovation furniture design minimal apartment shelf candle rug diy",
       "interiordesign homedecor homesweethome interior diyhome cozyhome", "decorator architect designer",
       "interior home furniture architecture", ["Interior Design Studio", "Home Decor"],
       ((230, 220, 200), (250, 250, 248), (110, 120, 70)), "rect", "smooth", (2, 5), "horizontal", 0.9),
    _t("business", "startup entrepreneur hustle meeting office growth marketing investing productivity mindset strategy goals success clients",
       "entrepreneur business hustle startup motivation success", "entrepreneur founder ceo consultant",
       "business entrepreneurship finance marketing", ["Entrepreneur", "Consulting Agency"],
       ((25, 40, 80), (200, 205, 210), (255, 255, 255)), "hlines", "checker", (3, 6), "vertical", 0.8),
    _t("family", "baby toddler family mom dad kids playtime nursery bedtime motherhood parenting school siblings naptime",
       "momlife familytime motherhood parenting kidsofinstagram dadlife", "mom dad parent mother",
       "family parenting child motherhood", ["Personal Blog", "Family"],
       ((170, 210, 240), (255, 240, 150), (250, 190, 200)), "dots", "smooth", (4, 9), "radial", 1.1),
    _t("outdoors", "hike mountain summit trail camping forest tent peak backpack wilderness lake views outdoors campfire",
       "hiking outdoors mountains camping naturelovers getoutside", "hiker climber mountaineer camper",
       "hiking mountain camping nature", ["Outdoor & Sporting Goods", "Athlete"],
       ((50, 110, 60), (150, 200, 240), (120, 120, 115)), "triangle", "grain", (1, 4), "vertical", 1.0),
    _t("art", "painting canvas sketch illustration gallery brush watercolor mural studio ink exhibition creative palette drawing",
       "art artist illustration painting artwork sketchbook", "artist painter illustrator",
       "art painting drawing", ["Artist", "Art Gallery"],
       ((230, 60, 60), (60, 90, 220), (250, 210, 40)), "blob", "stripes", (3, 7), "diagonal", 0.9),
)

TOPIC_INDEX = {topic.name: index for index, topic in enumerate(TOPICS)}

#: Which topics each category's brands post about (relative weights).
CATEGORY_PROFILES: dict[str, dict[str, float]] = {
    "airline": {"travel": 3, "aviation": 3, "photography": 0.6, "business": 0.6, "outdoors": 0.3},
    "auto": {"cars": 4, "tech": 1, "outdoors": 1, "travel": 0.6, "cycling": 0.3},
    "clothing": {"fashion": 4, "fitness": 1, "running": 0.5, "sustainability": 0.6, "outdoors": 0.5},
    "drink": {"coffee": 2, "cocktails": 2, "healthy": 1, "fitness": 0.5, "music": 0.5},
    "electronics": {"tech": 4, "gaming": 2, "photography": 1.5, "music": 0.5},
    "entertainment": {"film": 3, "music": 3, "gaming": 1.5, "cocktails": 0.5},
    "food": {"cooking": 3, "baking": 2, "healthy": 2, "family": 0.5, "coffee": 0.5},
    "jewelry": {"jewelry": 4, "weddings": 2, "fashion": 1.5},
    "makeup": {"makeup": 4, "skincare": 2.5, "hair": 1.5, "fashion": 0.5},
    "nonprofit": {"charity": 4, "sustainability": 2, "pets": 1.5, "family": 0.5},
    "services": {"business": 2, "home": 2, "travel": 1, "weddings": 1, "hair": 0.5, "pets": 0.5, "family": 0.5},
    "shoes": {"sneakers": 3, "running": 2, "fashion": 1.5, "outdoors": 1, "fitness": 0.5},
}
assert set(CATEGORY_PROFILES) == set(CATEGORIES)

#: Lifestyle clusters: topics that suit each other's audiences (the hidden complementarity).
CLUSTERS: tuple[tuple[str, ...], ...] = (
    ("running", "fitness", "healthy", "yoga", "cycling"),
    ("travel", "photography", "outdoors", "aviation"),
    ("fashion", "makeup", "jewelry", "hair", "sneakers", "skincare"),
    ("music", "cocktails", "film", "art"),
    ("family", "pets", "home", "baking", "cooking"),
    ("tech", "gaming", "business", "cars"),
    ("charity", "sustainability", "outdoors", "yoga"),
    ("weddings", "jewelry", "travel", "baking"),
    ("coffee", "baking", "art", "business"),
)

#: Brand business categories (profile field) per category; the first word maps to the category concept.
BRAND_BUSINESS: dict[str, tuple[str, ...]] = {
    "airline": ("Airline Company", "Airline Industry", "Travel Company"),
    "auto": ("Automotive Manufacturer", "Automotive Dealership", "Motor Vehicle Company"),
    "clothing": ("Clothing (Brand)", "Clothing Store", "Apparel & Clothing"),
    "drink": ("Drink Brand", "Beverage Company", "Brewery"),
    "electronics": ("Electronics Company", "Electronics Store", "Computers & Internet Website"),
    "entertainment": ("Entertainment Website", "Media/News Company", "TV Network"),
    "food": ("Food & Beverage Company", "Food Brand", "Restaurant"),
    "jewelry": ("Jewelry/Watches", "Jewelry Store", "Accessories"),
    "makeup": ("Cosmetics Store", "Beauty, Cosmetic & Personal Care", "Makeup Brand"),
    "nonprofit": ("Nonprofit Organization", "Charity Organization", "Non-Governmental Organization (NGO)"),
    "services": ("Service", "Business Service", "Consulting Agency"),
    "shoes": ("Shoe Store", "Footwear Brand", "Sportswear Store"),
}
#: Generic influencer profile categories, unrelated to any topic.
GENERIC_BUSINESS = ("Personal Blog", "Public Figure", "Digital Creator", "Blogger", "Just For Fun")

#: Brand name parts: syllables and a category-flavoured suffix (brands may reveal their own category).
NAME_SYLLABLES = ("ve", "lo", "ra", "no", "vi", "ta", "ka", "mi", "sol", "mar", "zen", "lu", "ori", "fi",
                  "quo", "tra", "bel", "dor", "ny", "xa", "po", "el", "ar", "is", "um", "ko", "re", "sa")
BRAND_SUFFIX: dict[str, tuple[str, ...]] = {
    "airline": ("air", "airways", "wings", "jet"), "auto": ("motors", "auto", "cars", "drive"),
    "clothing": ("wear", "apparel", "studio", "label"), "drink": ("drinks", "brew", "sips", "water"),
    "electronics": ("tech", "labs", "audio", "devices"), "entertainment": ("studios", "tv", "live", "pictures"),
    "food": ("foods", "kitchen", "eats", "bakery"), "jewelry": ("jewels", "gems", "gold", "rings"),
    "makeup": ("beauty", "cosmetics", "glow", "makeup"), "nonprofit": ("foundation", "org", "trust", "fund"),
    "services": ("group", "co", "services", "hq"), "shoes": ("shoes", "kicks", "footwear", "run"),
}
FIRST_NAMES = ("anna", "mia", "sara", "lucas", "leo", "emma", "noah", "olivia", "liam", "ava", "ella",
               "jack", "zoe", "max", "lily", "sam", "nina", "theo", "ruby", "eli", "maya", "finn", "ivy",
               "jade", "kai", "luna", "milo", "nora", "omar", "priya", "rosa", "tom", "una", "vera", "will",
               "yuki", "zara", "ben", "chloe", "dani", "erin", "felix", "gia", "hugo", "iris", "jon", "kate")
CITIES = ("London", "NYC", "LA", "Paris", "Berlin", "Sydney", "Toronto", "Lisbon", "Austin", "Miami",
          "Chicago", "Dublin", "Melbourne", "Amsterdam", "Cape Town", "Vancouver", "Seattle", "Denver")

#: Words any account uses, whatever its interests.
GENERIC_WORDS = tuple(("today weekend morning sunday friends love life moments vibes happy goals memories "
                       "inspiration favorite everyday season summer city home new best time day night little "
                       "week tonight amazing perfect weather").split())
GLUE = ("so", "the", "with", "and", "my", "this", "for", "what a", "all the", "some")
#: Hashtags that farm likes and follows (the ones the concept pipeline must filter out).
SPAM_TAGS = ("like4like", "likeforlike", "l4l", "follow4follow", "followforfollow", "f4f", "instagood",
             "instadaily", "followme", "likeforlikes", "tagsforlikes", "instalike", "picoftheday")
#: Popular generic hashtags (not spam, but carry no interest).
GENERIC_TAGS = ("love", "photooftheday", "happy", "beautiful", "instagram", "tbt", "nofilter", "weekend",
                "goodvibes", "life")
EMOJI = ("😍", "🔥", "✨", "❤️", "🙌", "😊", "💪", "🌞", "🎉", "👌", "😎", "🙏", "💯", "🌈", "⭐", "💫",
         "😂", "🥰", "👏", "🌸", "☕", "🍕", "✈️", "🎶", "📸", "🏃", "💄", "👟", "💍", "🐶")

#: Caption templates: {w} a content word, {g} a generic word, {e} an emoji.
INFLUENCER_TEMPLATES = (
    "{w} and {w} {g} {e}", "Nothing beats {w} on a {g} {e}", "So much {w} and {w} this {g}",
    "{w} {w} {w} {e}", "Can't get enough of this {w}", "Throwback to {w} with the {w} crew",
    "Who else loves {w}? {e}", "Ready for {w} {e}", "My favourite {w} {g}",
    "First {w} of the {g}, what a {w}", "{g} {w} mood {e}", "Little {w} break before {w}",
    "Trying a new {w} today, the {w} was perfect", "All about {w} and good {g} {e}",
    "Back to {w} after a long {g}", "This {w} though {e}{e}", "Happy {g}! {w} and {w} all day",
    "Guess what arrived: {w} {e}", "Sunday means {w}, {w} and {g}", "Still thinking about that {w}",
)
BRAND_TEMPLATES = (
    "Introducing our new {w} {e}", "Discover the {w} {w} collection, link in bio",
    "Made for {w} and {w}", "Your {g} needs more {w} {e}", "Meet the {w} that changes everything",
    "{w} season is here. Are you ready?", "Limited edition {w}, only this {g}",
    "Behind the scenes: {w} and {w} {e}", "Tag a friend who loves {w}", "Our {w} team at work on the new {w}",
    "Big news for {w} lovers {e}", "From our {w} to your {g}",
)
MENTION_TEMPLATES = ("with @{u}", "thanks @{u} {e}", "by @{u}", "📸 @{u}", "feat. @{u}", "cc @{u}")

#: Captions of the non-English defect (other languages and scripts); each is unique text.
FOREIGN_CAPTIONS = (
    "Une belle journée avec mes amis, c'est la vie", "Très contente de partager ce moment avec vous",
    "Qué día tan bonito, gracias por todo", "Hoy es un gran día para salir con los amigos",
    "Heute ist ein schöner Tag und ich bin sehr glücklich", "Das ist mein neues Lieblingsprojekt",
    "Che bella giornata oggi, sono molto felice", "Grazie a tutti per il vostro supporto",
    "Hoje foi um dia incrível com a minha família", "Muito obrigado pelo carinho de vocês",
    "今日はとても楽しい一日でした", "新しいカフェに行ってきました",
    "Сегодня прекрасный день для прогулки", "Спасибо всем за поддержку",
    "يوم جميل مع الأصدقاء", "오늘 정말 즐거운 하루였어요",
)

#: Function words used by the validator's language heuristic (English vs. others).
ENGLISH_STOPWORDS = frozenset(("the and with my this for what all some so of to in on is it at a an we i you "
                               "our your who else back after before about still that was be are").split())
FOREIGN_STOPWORDS = frozenset(("le la les des est et avec pour une dans du sur très nous je mon ma c'est "
                               "el los las es con para muy del por mi y que más hoy día gracias "
                               "der das und mit ist ein eine für ich nicht sehr heute mein "
                               "il che della sono oggi molto mio di grazie tutti "
                               "os um uma não muito hoje meu foi com minha obrigado").split())

#: Non-English ConceptNet rows (distractors the concept pipeline must drop).
FOREIGN_EDGES = (
    ("fr", "voyage", "vacances"), ("fr", "cuisine", "nourriture"), ("fr", "chaussure", "vêtement"),
    ("es", "café", "bebida"), ("es", "viaje", "turismo"), ("de", "auto", "fahrzeug"),
    ("de", "musik", "kunst"), ("it", "gioiello", "accessorio"), ("pt", "maquiagem", "beleza"),
    ("ja", "旅行", "観光"), ("fr", "photographe", "photographie"), ("es", "corredor", "deporte"),
)
#: ConceptNet concepts outside the concept set, used by distractor edges.
OUTSIDE_CONCEPTS = ("person", "human", "thing", "object", "activity", "place", "profession", "hobby",
                    "worker", "woman", "man", "device", "product", "organization", "event", "group")
