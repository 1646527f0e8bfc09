//! Word lists for generated subdomains: short, plain, family-friendly English.
//!
//! The seed's six adjectives and six nouns come first; the rest make the space
//! large: 230 × 240 words × 36³ suffixes ≈ 2.6 billion names, so a random pick
//! almost never collides even with millions of names held.

/// Adjectives, the first part of `adjective-noun-xyz`.
pub const ADJECTIVES: &[&str] = &[
    "quick", "bright", "swift", "clever", "smart", "fast", "able", "agile", "airy", "alert",
    "amber", "ample", "azure", "balmy", "bold", "brave", "breezy", "brisk", "bubbly", "busy",
    "calm", "candid", "cheery", "chief", "chill", "civic", "classic", "clean", "clear", "cosmic",
    "cozy", "crisp", "curly", "daring", "dapper", "dazzling", "deft", "dense", "direct", "dizzy",
    "dreamy", "dusty", "eager", "early", "easy", "electric", "elegant", "epic", "even", "exact",
    "fair", "fancy", "feisty", "fervent", "fiery", "fine", "firm", "fluffy", "flying", "fond",
    "free", "fresh", "friendly", "frosty", "funny", "fuzzy", "gentle", "giant", "gifted", "glad",
    "gleaming", "glossy", "golden", "grand", "green", "happy", "hardy", "hazy", "hearty",
    "helpful", "honest", "humble", "icy", "ideal", "jolly", "jovial", "joyful", "keen", "kind",
    "lively", "lofty", "loyal", "lucid", "lucky", "lunar", "magic", "major", "mellow", "merry",
    "mighty", "mild", "minty", "misty", "modern", "modest", "nimble", "noble", "novel", "oaken",
    "open", "orange", "pastel", "patient", "peppy", "perky", "plucky", "plush", "polar", "polite",
    "prime", "proud", "pure", "quiet", "rapid", "rare", "ready", "regal", "rosy", "royal",
    "rustic", "rusty", "sandy", "savvy", "serene", "sharp", "shiny", "silent", "silky", "silver",
    "simple", "sleek", "snappy", "snowy", "solar", "solid", "sonic", "sound", "spicy", "spry",
    "stable", "steady", "stellar", "still", "stoic", "sturdy", "sunny", "super", "sweet", "tender",
    "tidy", "tiny", "topaz", "tranquil", "trusty", "upbeat", "urban", "valid", "vast", "velvet",
    "vivid", "warm", "wavy", "wise", "witty", "woolly", "zany", "zesty", "zippy", "active",
    "bouncy", "bronze", "cobalt", "coral", "crimson", "cyan", "dusky", "ember", "frozen", "gusty",
    "humming", "indigo", "ivory", "jade", "lilac", "linen", "maple", "marble", "meadow", "mossy",
    "navy", "ochre", "olive", "onyx", "opal", "pearl", "pine", "quartz", "ruby", "sable", "sage",
    "scarlet", "sepia", "slate", "smoky", "spruce", "stony", "teal", "thorny", "umber", "violet",
    "windy", "wintry", "amused", "blithe", "caring", "chummy", "cuddly", "devoted", "earnest",
    "fabled",
];

/// Nouns, the second part of `adjective-noun-xyz`.
pub const NOUNS: &[&str] = &[
    "beam", "tunnel", "link", "bridge", "gate", "portal", "acorn", "anchor", "apple", "arch",
    "arrow", "aspen", "atlas", "badger", "bay", "beacon", "bear", "bee", "birch", "bison",
    "blossom", "boat", "brook", "buffalo", "butter", "cabin", "cactus", "camel", "canal", "canyon",
    "cape", "castle", "cedar", "cherry", "cliff", "cloud", "clover", "comet", "coral", "cove",
    "crane", "creek", "crow", "cub", "dawn", "deer", "delta", "desert", "dolphin", "dove",
    "dragon", "dune", "eagle", "echo", "elm", "falcon", "fern", "ferry", "field", "finch", "fjord",
    "flame", "flint", "forest", "fox", "frog", "garden", "gecko", "geyser", "glacier", "glade",
    "grove", "gull", "harbor", "hare", "hawk", "hazel", "heron", "hill", "hive", "horizon",
    "island", "ivy", "jaguar", "jay", "jetty", "kayak", "kelp", "kite", "koala", "lagoon", "lake",
    "lantern", "lark", "laurel", "leaf", "lemur", "lily", "lion", "llama", "lotus", "lynx",
    "magnet", "mango", "maple", "marsh", "meadow", "mesa", "meteor", "mint", "moon", "moose",
    "moth", "mountain", "needle", "nest", "newt", "oasis", "ocean", "orbit", "orchid", "otter",
    "owl", "panda", "path", "peach", "peak", "pebble", "pelican", "pepper", "pier", "pine",
    "planet", "plaza", "plum", "pond", "poppy", "prairie", "puffin", "quail", "quasar", "rabbit",
    "raven", "reef", "ridge", "river", "robin", "rocket", "rose", "sail", "salmon", "sequoia",
    "shell", "shore", "sky", "slope", "sparrow", "spring", "spruce", "squid", "star", "stone",
    "storm", "stream", "summit", "sun", "swan", "thicket", "thunder", "tide", "tiger", "trail",
    "tree", "tulip", "tundra", "turtle", "valley", "vine", "violet", "volcano", "walrus", "wave",
    "willow", "wind", "wolf", "wren", "yak", "zebra", "zephyr", "alpaca", "basin", "bluff",
    "breeze", "brush", "burrow", "candle", "cavern", "chalk", "circle", "compass", "crystal",
    "current", "dingo", "ember", "estuary", "feather", "fountain", "galaxy", "harvest", "heath",
    "iris", "jasmine", "juniper", "kestrel", "knoll", "lichen", "marlin", "mirror", "nebula",
    "nutmeg", "orchard", "panther", "penguin", "pixel", "prism", "quill", "rapids", "ripple",
    "saffron", "signal", "sonnet", "spark", "sprout", "thistle", "timber", "topaz", "voyage",
    "walnut", "whistle", "yarrow",
];
