"""Per-locale reference data for the synthetic customer generator.

Everything that makes a synthetic customer look like it came from a real
country lives here: given and family names in the native script (with the
romanized form used to build an ASCII email local part), time zones, phone
number shapes, currencies and price levels.

Why the data is hand-written rather than generated: the import path, the
renderer and the preference center must be exercised by the scripts and
characters real customers bring (CJK, Hangul, Arabic and Hebrew right-to-left
text, Devanagari with combining marks, Cyrillic, Latin with diacritics and
apostrophes). Random code points would not have realistic lengths, word
shapes or romanizations, and would hide bugs such as a slug function that
drops every non-ASCII letter.

Name lists are stored as ``|``-separated strings to keep this file readable.
Non-Latin entries are ``"native roman"`` (the romanization is the last
space-separated word, so natives may contain spaces, e.g. ``عبد الله``);
Latin entries are just the native spelling and are romanized by
:func:`romanize_latin`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = [
    "LOCALES",
    "LOCALE_WEIGHTS",
    "Locale",
    "Name",
    "romanize_latin",
]


@dataclass(frozen=True, slots=True)
class Name:
    """A name as shown to humans (``native``) and as used in an address (``roman``).

    ``roman`` is always ``[a-z]{2,}``: the email builder relies on that to keep
    local parts unambiguous (see ``generator._local_part``).
    """

    native: str
    roman: str


@dataclass(frozen=True, slots=True)
class Locale:
    """Everything the generator needs to know about one locale.

    ``family_female`` is parallel to ``family`` and only differs where the
    language inflects surnames by gender (Russian ``Иванов``/``Иванова``), so
    that a woman never gets a masculine surname form.
    ``double_family`` is the probability of two family names (Spanish and
    Brazilian customers usually carry both parents' surnames), which also makes
    full names far more unique.
    """

    code: str
    female: tuple[Name, ...]
    male: tuple[Name, ...]
    family: tuple[Name, ...]
    family_female: tuple[Name, ...]
    double_family: float
    timezones: tuple[tuple[str, float], ...]
    phone_templates: tuple[str, ...]
    currency: str
    # Units of local currency per EUR, and how expensive goods are relative to
    # the eurozone in EUR terms (purchasing power), so baskets look local.
    rate: float
    price_level: float
    # Rounding unit for prices: 0.01 for cent currencies, 10 or 100 for
    # currencies that do not use small units in shop prices (JPY, KRW, ...).
    price_unit: int
    comma_suffixes: tuple[str, ...]

    @property
    def given_count(self) -> int:
        """Number of distinct given names, used by the data-volume test."""
        return len(self.female) + len(self.male)


_LATIN_SPECIAL = {
    "ß": "ss",
    "ø": "o",
    "æ": "ae",
    "œ": "oe",
    "ł": "l",
    "đ": "d",
    "ı": "i",
    "þ": "th",
    "ð": "d",
}
_GERMAN_UMLAUTS = {"ä": "ae", "ö": "oe", "ü": "ue"}


def romanize_latin(text: str, *, umlauts: bool = False) -> str:
    """ASCII-fold a Latin-script name into ``[a-z]*`` for an address.

    German convention writes ``ü`` as ``ue`` (Müller → mueller), which is what
    a German customer would type into an address; elsewhere diacritics are
    simply dropped (Zoë → zoe, Núñez → nunez). Apostrophes, hyphens and spaces
    disappear (O'Brien → obrien, De Luca → deluca).
    """
    lowered = text.lower()
    out: list[str] = []
    for ch in lowered:
        if umlauts and ch in _GERMAN_UMLAUTS:
            out.append(_GERMAN_UMLAUTS[ch])
            continue
        if ch in _LATIN_SPECIAL:
            out.append(_LATIN_SPECIAL[ch])
            continue
        if ch == "å":
            # Ångström is conventionally folded to "angstrom"/"aangstroem";
            # the plain form is what people type.
            out.append("a")
            continue
        for base in unicodedata.normalize("NFKD", ch):
            if "a" <= base <= "z":
                out.append(base)
    return "".join(out)


def _latin(data: str, *, umlauts: bool = False) -> tuple[Name, ...]:
    return tuple(
        Name(native=n.strip(), roman=romanize_latin(n.strip(), umlauts=umlauts))
        for n in data.split("|")
        if n.strip()
    )


def _pairs(data: str) -> tuple[Name, ...]:
    names: list[Name] = []
    for item in data.split("|"):
        item = item.strip()
        if not item:
            continue
        native, roman = item.rsplit(" ", 1)
        names.append(Name(native=native.strip(), roman=roman))
    return tuple(names)


def _russian_female(family: tuple[Name, ...]) -> tuple[Name, ...]:
    """Feminine surname forms: -ов/-ев/-ин → -ова/-ева/-ина, -ский → -ская."""
    out: list[Name] = []
    for name in family:
        native, roman = name.native, name.roman
        if native.endswith(("ов", "ев", "ёв", "ин", "ын")):
            out.append(Name(native + "а", roman + "a"))
        elif native.endswith("ий") and roman.endswith("y"):
            out.append(Name(native[:-2] + "ая", roman[:-1] + "aya"))
        else:
            out.append(name)
    return tuple(out)


_EN_COMMA = (", Jr.", ", Sr.", ", III", ", PhD")
_PLAIN_COMMA = (", ",)

_US_FEMALE = _latin(
    "Emma|Olivia|Ava|Sophia|Isabella|Mia|Charlotte|Amelia|Harper|Evelyn|Abigail|Emily|"
    "Madison|Chloe|Zoë|Aaliyah|Brianna|Jasmine|Destiny|Kayla|Savannah|Hannah|Grace|"
    "Natalie|Riley|Brooklyn|Lucía|Camila|Mei|Priya"
)
_US_MALE = _latin(
    "Liam|Noah|James|William|Benjamin|Lucas|Henry|Alexander|Michael|Daniel|Matthew|"
    "Jackson|David|Joseph|Carter|Jayden|DeShawn|Tyrone|José|Andrés|Ethan|Logan|Mason|"
    "Caleb|Wyatt|Elijah|Owen|Connor|Darnell|Kevin"
)
_US_FAMILY = _latin(
    "Smith|Johnson|Williams|Brown|Jones|Garcia|Miller|Davis|Rodriguez|Martinez|Hernandez|"
    "Lopez|Gonzalez|Wilson|Anderson|Thomas|Taylor|Moore|Jackson|Martin|Lee|Nguyen|"
    "Thompson|White|Harris|O'Brien|Núñez|Ångström|Kowalski|McAllister|Washington|Patel|"
    "Kim|Cohen|Goldberg|Robinson|Clark|Lewis|Walker|Hall|Young|King|Wright|Scott|Flores|"
    "Rivera|Campbell|Mitchell|Carter|Roberts"
)

_GB_FEMALE = _latin(
    "Olivia|Amelia|Isla|Ava|Freya|Poppy|Sophie|Grace|Florence|Evie|Imogen|Niamh|Siobhán|"
    "Aoife|Eilidh|Zoë|Lily|Ella|Rosie|Harriet|Phoebe|Bethan|Ffion|Aisha|Matilda"
)
_GB_MALE = _latin(
    "Oliver|George|Harry|Noah|Jack|Charlie|Arthur|Alfie|Theo|Oscar|Rhys|Callum|Seán|Angus|"
    "Dylan|Freddie|Archie|Joshua|Thomas|Rory|Hamish|Gethin|Mohammed|Rohan|Edward"
)
_GB_FAMILY = _latin(
    "Smith|Jones|Williams|Taylor|Brown|Davies|Evans|Wilson|Thomas|Roberts|Johnson|Lewis|"
    "Walker|Robinson|Wood|Thompson|Wright|Hughes|Edwards|Green|O'Brien|O'Connor|MacDonald|"
    "Fitzgerald|Ó Súilleabháin|Llewellyn|Ashworth|Featherstonehaugh|Khan|Ahmed|Singh|"
    "Okafor|Campbell|Stewart|Murphy|Clarke|Patel|Harrison|Cooper|Morgan|Bell|Ward|"
    "Turner|Hill|Moore|Parker|Price|Bennett|Gray|Fox"
)

_DE_FEMALE = _latin(
    "Mia|Emma|Hannah|Sophia|Emilia|Lina|Marie|Lea|Clara|Lena|Anna|Greta|Frieda|Charlotte|"
    "Johanna|Mathilda|Käthe|Lotte|Mareike|Jördis|Ursula|Sabine|Brigitte|Jülide|Anneliese",
    umlauts=True,
)
_DE_MALE = _latin(
    "Ben|Paul|Leon|Finn|Elias|Jonas|Luis|Noah|Felix|Lukas|Maximilian|Jürgen|Jörg|Björn|"
    "Sören|Uwe|Matthias|Günther|Karl-Heinz|Dieter|Wolfgang|Till|Mehmet|Moritz|Henrik",
    umlauts=True,
)
_DE_FAMILY = _latin(
    "Müller|Schmidt|Schneider|Fischer|Weber|Meyer|Wagner|Becker|Schulz|Hoffmann|Schäfer|"
    "Koch|Bauer|Richter|Klein|Wolf|Schröder|Neumann|Schwarz|Zimmermann|Braun|Krüger|"
    "Hofmann|Hartmann|Lange|Schmitt|Werner|Krause|Meier|Lehmann|Köhler|Weiß|Groß|"
    "Yılmaz|Nowak|Böhm|Förster|Jäger|von Bülow|Vogel",
    umlauts=True,
)

_FR_FEMALE = _latin(
    "Louise|Ambre|Jade|Emma|Chloé|Léa|Manon|Inès|Zoé|Camille|Lucie|Anaïs|Océane|Maëlys|"
    "Héloïse|Élodie|Noémie|Marie-Claire|Margaux|Juliette|Clémence|Aurélie|Solène|Maïwenn|"
    "Céline"
)
_FR_MALE = _latin(
    "Gabriel|Léo|Raphaël|Louis|Arthur|Jules|Hugo|Maël|Noé|Lucas|Théo|Mathéo|Jean-Luc|"
    "François|Étienne|Jérôme|Benoît|Gaël|Loïc|Thibault|Mathis|Aurélien|Cédric|Yannick|"
    "Anthony"
)
_FR_FAMILY = _latin(
    "Martin|Bernard|Dubois|Thomas|Robert|Richard|Petit|Durand|Leroy|Moreau|Simon|Laurent|"
    "Lefèvre|Michel|Garcia|David|Bertrand|Roux|Vincent|Fournier|Morel|Girard|André|"
    "Lefebvre|Mercier|Dupont|Lambert|Bonnet|François|Faure|Chevalier|Gauthier|Hébert|"
    "Benoît|Perrin|Lemaire|Brûlé|Le Goff|Nguyen|Da Silva"
)

_ES_FEMALE = _latin(
    "Lucía|Sofía|Martina|María|Paula|Julia|Daniela|Valeria|Alba|Emma|Carla|Sara|Noa|"
    "Carmen|Ainhoa|Begoña|Nuria|Pilar|Inés|Itziar|María José|Rocío|Montserrat|Almudena|"
    "Irene"
)
_ES_MALE = _latin(
    "Hugo|Martín|Lucas|Mateo|Leo|Daniel|Alejandro|Pablo|Manuel|Álvaro|Adrián|David|Mario|"
    "Javier|Iñaki|Jesús|José Luis|Sergio|Íker|Andrés|Joaquín|Rubén|Jordi|Xavier|Ramón"
)
_ES_FAMILY = _latin(
    "García|Rodríguez|González|Fernández|López|Martínez|Sánchez|Pérez|Gómez|Martín|"
    "Jiménez|Ruiz|Hernández|Díaz|Moreno|Muñoz|Álvarez|Romero|Alonso|Gutiérrez|Navarro|"
    "Torres|Domínguez|Vázquez|Ramos|Núñez|Ibáñez|Ñíguez|Peña|Castaño|Echeverría|Ortega|"
    "Delgado|Castro|Serrano"
)

_BR_FEMALE = _latin(
    "Maria|Ana|Helena|Alice|Laura|Manuela|Valentina|Sophia|Isabella|Heloísa|Luíza|Júlia|"
    "Lívia|Beatriz|Mariana|Gabriela|Letícia|Vitória|Conceição|Fernanda|Cecília|Yasmin|"
    "Thaís|Luana|Raíssa"
)
_BR_MALE = _latin(
    "Miguel|Arthur|Gael|Théo|Heitor|Ravi|Davi|Bernardo|Gabriel|Lucas|João|Pedro|Matheus|"
    "Rafael|Guilherme|Gustavo|Felipe|Thiago|Caio|Antônio|José|Enzo|Vinícius|Otávio|Murilo"
)
_BR_FAMILY = _latin(
    "Silva|Santos|Oliveira|Souza|Rodrigues|Ferreira|Alves|Pereira|Lima|Gomes|Costa|"
    "Ribeiro|Martins|Carvalho|Almeida|Lopes|Soares|Fernandes|Vieira|Barbosa|Rocha|Dias|"
    "Nascimento|Araújo|Conceição|Magalhães|Gonçalves|Simões|Brandão|Assunção|Moura|"
    "Cavalcanti|Teixeira|Monteiro|Mendes"
)

_IT_FEMALE = _latin(
    "Sofia|Aurora|Giulia|Ginevra|Alice|Beatrice|Emma|Giorgia|Vittoria|Matilde|Chiara|"
    "Francesca|Federica|Nicoletta|Noemi|Martina|Alessia|Elisa|Rosaria|Gaia|Ilaria|"
    "Benedetta|Caterina|Lucrezia|Annalisa"
)
_IT_MALE = _latin(
    "Leonardo|Francesco|Alessandro|Lorenzo|Mattia|Tommaso|Gabriele|Andrea|Riccardo|"
    "Edoardo|Giuseppe|Niccolò|Luca|Marco|Giovanni|Salvatore|Davide|Pietro|Federico|"
    "Stefano|Gennaro|Carmine|Emanuele|Simone|Nicolò"
)
_IT_FAMILY = _latin(
    "Rossi|Russo|Ferrari|Esposito|Bianchi|Romano|Colombo|Ricci|Marino|Greco|Bruno|Gallo|"
    "Conti|De Luca|Mancini|Costa|Giordano|Rizzo|Lombardi|Moretti|Barbieri|Fontana|"
    "Santoro|Mariani|Rinaldi|Caruso|Ferrara|D'Angelo|Dell'Acqua|Sabbatini|Galli|Cattaneo|"
    "Fabbri|Lo Russo|Parisi"
)

_RU_FEMALE = _pairs(
    "Анна anna|Мария maria|Елена elena|Ольга olga|Наталья natalya|Татьяна tatyana|"
    "Ирина irina|Екатерина ekaterina|Светлана svetlana|Юлия yulia|Анастасия anastasia|"
    "Дарья darya|Алёна alena|Ксения ksenia|Полина polina|Виктория viktoria|Софья sofya|"
    "Людмила lyudmila"
)
_RU_MALE = _pairs(
    "Александр alexander|Сергей sergey|Дмитрий dmitry|Андрей andrey|Алексей alexey|"
    "Максим maxim|Иван ivan|Михаил mikhail|Николай nikolay|Евгений evgeny|"
    "Владимир vladimir|Артём artem|Павел pavel|Никита nikita|Илья ilya|Юрий yury|"
    "Григорий grigory|Фёдор fedor"
)
_RU_FAMILY = _pairs(
    "Иванов ivanov|Смирнов smirnov|Кузнецов kuznetsov|Попов popov|Васильев vasilyev|"
    "Петров petrov|Соколов sokolov|Михайлов mikhailov|Новиков novikov|Фёдоров fedorov|"
    "Морозов morozov|Волков volkov|Алексеев alekseev|Лебедев lebedev|Семёнов semenov|"
    "Егоров egorov|Павлов pavlov|Козлов kozlov|Степанов stepanov|Николаев nikolaev|"
    "Орлов orlov|Андреев andreev|Макаров makarov|Никитин nikitin|Захаров zakharov|"
    "Соловьёв solovyov|Вишневский vishnevsky|Шевченко shevchenko|Пушкин pushkin"
)

_JA_FEMALE = _pairs(
    "陽葵 himari|凛 rin|結菜 yuna|葵 aoi|芽依 mei|紬 tsumugi|澪 mio|さくら sakura|"
    "美咲 misaki|愛子 aiko|由美 yumi|恵子 keiko|花子 hanako|結衣 yui|陽菜 hina|"
    "真由美 mayumi|ひなた hinata|七海 nanami"
)
_JA_MALE = _pairs(
    "蓮 ren|陽翔 haruto|湊 minato|悠真 yuma|大翔 hiroto|颯太 sota|翔太 shota|健太 kenta|"
    "拓海 takumi|大輝 daiki|翔 sho|誠 makoto|浩 hiroshi|隆 takashi|健一 kenichi|"
    "和也 kazuya|ケン ken|悠人 yuto"
)
_JA_FAMILY = _pairs(
    "佐藤 sato|鈴木 suzuki|高橋 takahashi|田中 tanaka|伊藤 ito|渡辺 watanabe|山本 yamamoto|"
    "中村 nakamura|小林 kobayashi|加藤 kato|吉田 yoshida|山田 yamada|佐々木 sasaki|"
    "山口 yamaguchi|松本 matsumoto|井上 inoue|木村 kimura|林 hayashi|斎藤 saito|"
    "清水 shimizu|山崎 yamazaki|森 mori|池田 ikeda|橋本 hashimoto|阿部 abe|石川 ishikawa|"
    "前田 maeda|藤原 fujiwara"
)

_ZH_FEMALE = _pairs(
    "美 mei|丽 li|静 jing|婷 ting|秀英 xiuying|芳 fang|娜 na|敏 min|雪 xue|梓涵 zihan|"
    "欣怡 xinyi|诗涵 shihan|雨桐 yutong|一诺 yinuo|佳怡 jiayi|思琪 siqi|晓燕 xiaoyan|"
    "慧 hui"
)
_ZH_MALE = _pairs(
    "伟 wei|强 qiang|磊 lei|军 jun|洋 yang|勇 yong|杰 jie|浩然 haoran|子轩 zixuan|"
    "宇轩 yuxuan|俊杰 junjie|博文 bowen|明 ming|建国 jianguo|志强 zhiqiang|家豪 jiahao|"
    "天佑 tianyou|鹏 peng"
)
_ZH_FAMILY = _pairs(
    "王 wang|李 li|张 zhang|刘 liu|陈 chen|杨 yang|黄 huang|赵 zhao|吴 wu|周 zhou|徐 xu|"
    "孙 sun|马 ma|朱 zhu|胡 hu|郭 guo|何 he|林 lin|罗 luo|高 gao|郑 zheng|梁 liang|"
    "谢 xie|宋 song|唐 tang|韩 han|冯 feng|邓 deng|曹 cao|欧阳 ouyang|司马 sima"
)

_KO_FEMALE = _pairs(
    "서연 seoyeon|서윤 seoyun|지우 jiwoo|하은 haeun|민서 minseo|지민 jimin|수아 sua|"
    "예은 yeeun|지현 jihyun|수빈 subin|은지 eunji|혜진 hyejin|유나 yuna|다은 daeun|"
    "소연 soyeon|미숙 misook"
)
_KO_MALE = _pairs(
    "민준 minjun|서준 seojun|도윤 doyun|예준 yejun|시우 siwoo|하준 hajun|주원 juwon|"
    "지호 jiho|준서 junseo|현우 hyunwoo|성민 sungmin|동현 donghyun|재현 jaehyun|"
    "상훈 sanghoon|영호 youngho|태양 taeyang"
)
_KO_FAMILY = _pairs(
    "김 kim|이 lee|박 park|최 choi|정 jung|강 kang|조 cho|윤 yoon|장 jang|임 lim|한 han|"
    "오 oh|서 seo|신 shin|권 kwon|황 hwang|안 ahn|송 song|류 ryu|전 jeon|홍 hong|고 ko|"
    "문 moon|양 yang|손 son|배 bae|백 baek|남궁 namgung"
)

_AR_FEMALE = _pairs(
    "فاطمة fatma|مريم mariam|نور nour|سارة sara|ياسمين yasmin|منى mona|هدى hoda|"
    "سلمى salma|آية aya|رنا rana|دينا dina|شيماء shaimaa|هبة heba|نادية nadia|ليلى laila|"
    "أمل amal|مارينا marina"
)
_AR_MALE = _pairs(
    "محمد mohamed|أحمد ahmed|محمود mahmoud|مصطفى mostafa|علي ali|عمر omar|يوسف youssef|"
    "خالد khaled|إبراهيم ibrahim|حسن hassan|حسين hussein|طارق tarek|كريم karim|عمرو amr|"
    "ياسين yassin|سيف seif|مينا mina|بيشوي bishoy"
)
_AR_FAMILY = _pairs(
    "عبد الله abdallah|السيد elsayed|إبراهيم ibrahim|حسن hassan|محمود mahmoud|"
    "مصطفى mostafa|عبد الرحمن abdelrahman|الشريف elsherif|المصري elmasry|سالم salem|"
    "فؤاد fouad|عثمان osman|منصور mansour|رمضان ramadan|شاكر shaker|فرج farag|نصر nasr|"
    "زكي zaki|جرجس girgis|عادل adel|سعيد saeed|كامل kamel|حافظ hafez|البنا elbanna|"
    "عزت ezzat|توفيق tawfik"
)

_HE_FEMALE = _pairs(
    "נועה noa|מאיה maya|תמר tamar|שירה shira|יעל yael|אביגיל avigail|אור or|רוני roni|"
    "מיכל michal|שרה sarah|רחל rachel|לאה leah|הדס hadas|אלה ella|עדי adi|ליה lia|"
    "אסתר esther"
)
_HE_MALE = _pairs(
    "דוד david|יוסף yosef|אריאל ariel|נועם noam|איתי itai|אורי uri|משה moshe|"
    "יונתן yonatan|דניאל daniel|אברהם avraham|יצחק yitzhak|עומר omer|איתן eitan|"
    "אליה eliya|עידו ido|רפאל refael|אמיר amir"
)
_HE_FAMILY = _pairs(
    "כהן cohen|לוי levi|מזרחי mizrahi|פרץ peretz|ביטון biton|דהן dahan|אברהם avraham|"
    "פרידמן friedman|אגבריה agbaria|מלכה malka|אזולאי azoulay|כץ katz|יוסף yosef|"
    "דוד david|עמר amar|אוחיון ohayon|חדד hadad|גבאי gabay|בן דוד bendavid|שפירא shapira|"
    "רוזנברג rosenberg|גולדברג goldberg|אשכנזי ashkenazi|ברגר berger|שלום shalom|"
    "סגל segal|וייס weiss"
)

_HI_FEMALE = _pairs(
    "आराध्या aaradhya|अनन्या ananya|दीया diya|प्रिया priya|पूजा pooja|नेहा neha|"
    "अंजलि anjali|सुनीता sunita|कविता kavita|ईशा isha|सान्वी saanvi|मीरा meera|"
    "लक्ष्मी lakshmi|श्रेया shreya|रिया riya|काव्या kavya|अदिति aditi"
)
_HI_MALE = _pairs(
    "आरव aarav|विवान vivaan|अर्जुन arjun|राहुल rahul|अमित amit|रोहित rohit|विजय vijay|"
    "सुरेश suresh|राजेश rajesh|संजय sanjay|अनिल anil|विहान vihaan|कबीर kabir|"
    "आदित्य aditya|ईशान ishaan|करण karan|मनोज manoj"
)
_HI_FAMILY = _pairs(
    "शर्मा sharma|वर्मा verma|गुप्ता gupta|सिंह singh|कुमार kumar|पटेल patel|जैन jain|"
    "अग्रवाल agarwal|यादव yadav|मिश्रा mishra|पांडे pandey|तिवारी tiwari|चौधरी chaudhary|"
    "मेहता mehta|शाह shah|जोशी joshi|रेड्डी reddy|नायर nair|अय्यर iyer|बनर्जी banerjee|"
    "मुखर्जी mukherjee|चटर्जी chatterjee|दास das|खन्ना khanna|कपूर kapoor|"
    "मल्होत्रा malhotra|देसाई desai|भट्ट bhatt"
)


def _locale(
    code: str,
    female: tuple[Name, ...],
    male: tuple[Name, ...],
    family: tuple[Name, ...],
    *,
    timezones: tuple[tuple[str, float], ...],
    phones: tuple[str, ...],
    currency: str,
    rate: float,
    price_level: float = 1.0,
    price_unit: int = 1,
    double_family: float = 0.0,
    family_female: tuple[Name, ...] | None = None,
    comma_suffixes: tuple[str, ...] = _PLAIN_COMMA,
) -> Locale:
    return Locale(
        code=code,
        female=female,
        male=male,
        family=family,
        family_female=family if family_female is None else family_female,
        double_family=double_family,
        timezones=timezones,
        phone_templates=phones,
        currency=currency,
        rate=rate,
        price_level=price_level,
        price_unit=price_unit,
        comma_suffixes=comma_suffixes,
    )


# Phone templates: "#" is a random digit. Where a country reserves a range for
# fiction (US 555-01xx, UK 07700 900xxx, France 06 39 98 xx xx) the template
# uses it, so a leaked test file can never ring a real person.
LOCALES: dict[str, Locale] = {
    loc.code: loc
    for loc in (
        _locale(
            "en_US",
            _US_FEMALE,
            _US_MALE,
            _US_FAMILY,
            timezones=(
                ("America/New_York", 0.45),
                ("America/Chicago", 0.29),
                ("America/Denver", 0.07),
                ("America/Phoenix", 0.03),
                ("America/Los_Angeles", 0.14),
                ("America/Anchorage", 0.01),
                ("Pacific/Honolulu", 0.01),
            ),
            phones=("+1 {area} 555 01##",),
            currency="USD",
            rate=1.08,
            price_level=1.05,
            comma_suffixes=_EN_COMMA,
        ),
        _locale(
            "en_GB",
            _GB_FEMALE,
            _GB_MALE,
            _GB_FAMILY,
            timezones=(("Europe/London", 1.0),),
            phones=("+44 7700 900###", "+44 20 7946 0###", "+44 161 496 0###"),
            currency="GBP",
            rate=0.85,
            comma_suffixes=_EN_COMMA,
        ),
        _locale(
            "de_DE",
            _DE_FEMALE,
            _DE_MALE,
            _DE_FAMILY,
            timezones=(("Europe/Berlin", 0.94), ("Europe/Vienna", 0.04), ("Europe/Zurich", 0.02)),
            phones=("+49 151 ########", "+49 170 #######", "+49 30 ########"),
            currency="EUR",
            rate=1.0,
        ),
        _locale(
            "fr_FR",
            _FR_FEMALE,
            _FR_MALE,
            _FR_FAMILY,
            timezones=(
                ("Europe/Paris", 0.97),
                ("Indian/Reunion", 0.02),
                ("America/Guadeloupe", 0.01),
            ),
            phones=("+33 6 39 98 ## ##", "+33 1 99 00 ## ##"),
            currency="EUR",
            rate=1.0,
        ),
        _locale(
            "es_ES",
            _ES_FEMALE,
            _ES_MALE,
            _ES_FAMILY,
            timezones=(("Europe/Madrid", 0.95), ("Atlantic/Canary", 0.05)),
            phones=("+34 6## ### ###", "+34 91 ### ## ##"),
            currency="EUR",
            rate=1.0,
            price_level=0.9,
            double_family=0.85,
        ),
        _locale(
            "pt_BR",
            _BR_FEMALE,
            _BR_MALE,
            _BR_FAMILY,
            timezones=(
                ("America/Sao_Paulo", 0.78),
                ("America/Recife", 0.06),
                ("America/Fortaleza", 0.06),
                ("America/Bahia", 0.05),
                ("America/Manaus", 0.05),
            ),
            phones=("+55 11 9#### ####", "+55 21 9#### ####", "+55 31 9#### ####"),
            currency="BRL",
            rate=5.6,
            price_level=0.6,
            double_family=0.6,
        ),
        _locale(
            "ja_JP",
            _JA_FEMALE,
            _JA_MALE,
            _JA_FAMILY,
            timezones=(("Asia/Tokyo", 1.0),),
            phones=("+81 90 #### ####", "+81 80 #### ####", "+81 3 #### ####"),
            currency="JPY",
            rate=160.0,
            price_level=0.9,
            price_unit=10,
        ),
        _locale(
            "zh_CN",
            _ZH_FEMALE,
            _ZH_MALE,
            _ZH_FAMILY,
            timezones=(("Asia/Shanghai", 0.97), ("Asia/Urumqi", 0.03)),
            phones=("+86 138 #### ####", "+86 139 #### ####", "+86 186 #### ####"),
            currency="CNY",
            rate=7.7,
            price_level=0.7,
        ),
        _locale(
            "ko_KR",
            _KO_FEMALE,
            _KO_MALE,
            _KO_FAMILY,
            timezones=(("Asia/Seoul", 1.0),),
            phones=("+82 10 #### ####",),
            currency="KRW",
            rate=1450.0,
            price_level=0.9,
            price_unit=100,
        ),
        _locale(
            "ar_EG",
            _AR_FEMALE,
            _AR_MALE,
            _AR_FAMILY,
            timezones=(("Africa/Cairo", 1.0),),
            phones=("+20 10 #### ####", "+20 11 #### ####", "+20 12 #### ####"),
            currency="EGP",
            rate=52.0,
            price_level=0.35,
            price_unit=10,
        ),
        _locale(
            "he_IL",
            _HE_FEMALE,
            _HE_MALE,
            _HE_FAMILY,
            timezones=(("Asia/Jerusalem", 1.0),),
            phones=("+972 50 ### ####", "+972 52 ### ####", "+972 54 ### ####"),
            currency="ILS",
            rate=4.0,
            price_level=1.1,
        ),
        _locale(
            "hi_IN",
            _HI_FEMALE,
            _HI_MALE,
            _HI_FAMILY,
            timezones=(("Asia/Kolkata", 1.0),),
            phones=("+91 98### #####", "+91 99### #####", "+91 70### #####"),
            currency="INR",
            rate=90.0,
            price_level=0.35,
            price_unit=10,
        ),
        _locale(
            "ru_RU",
            _RU_FEMALE,
            _RU_MALE,
            _RU_FAMILY,
            timezones=(
                ("Europe/Moscow", 0.7),
                ("Europe/Samara", 0.05),
                ("Asia/Yekaterinburg", 0.09),
                ("Asia/Novosibirsk", 0.08),
                ("Asia/Vladivostok", 0.04),
                ("Europe/Kaliningrad", 0.04),
            ),
            phones=("+7 9## ### ## ##",),
            currency="RUB",
            rate=100.0,
            price_level=0.55,
            price_unit=10,
            family_female=_russian_female(_RU_FAMILY),
        ),
        _locale(
            "it_IT",
            _IT_FEMALE,
            _IT_MALE,
            _IT_FAMILY,
            timezones=(("Europe/Rome", 1.0),),
            phones=("+39 3## ### ####", "+39 06 #### ####"),
            currency="EUR",
            rate=1.0,
            price_level=0.95,
        ),
    )
}

# Share of customers per locale. English-speaking customers dominate, as they
# would for a shop selling in Europe and North America, but every locale gets
# enough customers to matter in a 2,000-record sample.
LOCALE_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("en_US", 27.0),
    ("en_GB", 12.0),
    ("de_DE", 9.0),
    ("fr_FR", 7.0),
    ("es_ES", 6.0),
    ("pt_BR", 7.0),
    ("ja_JP", 5.0),
    ("zh_CN", 5.0),
    ("ko_KR", 3.0),
    ("ar_EG", 3.0),
    ("he_IL", 2.0),
    ("hi_IN", 6.0),
    ("ru_RU", 4.0),
    ("it_IT", 4.0),
)

# US area codes by time zone, so that a New York customer has a New York number.
US_AREA_CODES: dict[str, tuple[str, ...]] = {
    "America/New_York": ("212", "646", "917", "617", "404", "305", "215", "704"),
    "America/Chicago": ("312", "773", "214", "713", "612", "504", "512"),
    "America/Denver": ("303", "720", "801", "505"),
    "America/Phoenix": ("602", "480", "520"),
    "America/Los_Angeles": ("213", "310", "415", "206", "503", "702", "619"),
    "America/Anchorage": ("907",),
    "Pacific/Honolulu": ("808",),
}

# Ingredients for the rare "very long name" records.
LONG_FAMILY_NAMES: tuple[str, ...] = (
    "Wolfeschlegelsteinhausenbergerdorff",
    "Keihanaikukauakahihuliheekahaunaele",
    "Featherstonehaugh-Cholmondeley-Marjoribanks",
)
EMOJI: tuple[str, ...] = ("🌸", "🚀", "✨", "🎉", "🦄", "🌻", "👩‍💻", "🇯🇵", "❤️", "🐙")
